"""A request the server holds far longer than its like gets one copy, and whichever answers
first is used (``instructgen.hedging``): a held bootstrap request no longer holds up the run,
the dataset is the one a run without the hold gives, copies respect the run's limits and stay
a small share of its requests, and ``--hedge-after off`` sends every request once."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SHARED, engine_env, make_engine
from selfinstruct_responder import respond
from wire_server import WireCall, WireServer

from instructgen import Request
from instructgen.cache import Cache
from instructgen.cli import cli
from instructgen.dispatch import DispatchConfig, Dispatcher
from instructgen.engines import Completion
from instructgen.hedging import HEDGE_FLOOR, MIN_SAMPLES, HedgePolicy, Latencies

HOLD = 60.0  # seconds the server holds a request: far past every bound below


def requests(n: int, tag: str = "q") -> list[Request]:
    return [Request.chat(f"{tag} {i}", max_tokens=20) for i in range(n)]


def held_once(prompt: str) -> object:
    return lambda call: call.prompt == prompt


def run(d: Dispatcher, reqs: list[Request]) -> list[object]:
    async def go() -> list[object]:
        async with d:
            return list(await d.complete_many(reqs))

    return asyncio.run(go())


# -- the policy -----------------------------------------------------------------------------


def test_the_percentile_is_that_of_the_latest_samples() -> None:
    seen = Latencies()
    for i in range(1000):
        seen.add(float(i))
    recent = sorted(float(i) for i in range(800, 1000))
    assert len(seen) == 200
    assert seen.percentile(0.95) == recent[189]  # nearest rank of 200 samples
    assert seen.percentile(0.0) == 800.0 and seen.percentile(1.0) == 999.0


def test_a_kind_is_hedged_once_it_or_the_run_has_enough_answers() -> None:
    policy = HedgePolicy()
    kind = (1024, 1)
    for _ in range(MIN_SAMPLES - 1):
        policy.record(kind, 0.2)
    assert policy.delay(kind) is None
    policy.record(kind, 0.2)
    assert policy.delay(kind) == HEDGE_FLOOR  # 3 x 0.2 s is under the floor
    for _ in range(200):
        policy.record(kind, 4.0)
    assert policy.delay(kind) == 12.0
    assert policy.delay((16, 1)) == 12.0  # a kind with few answers: compared with them all
    policy.record((16, 1), 0.1)
    assert policy.delay((16, 1)) == 12.0
    for _ in range(MIN_SAMPLES):
        policy.record((16, 1), 0.1)
    assert policy.delay((16, 1)) == HEDGE_FLOOR  # enough of its own now
    assert HedgePolicy(after=2.0).delay((16, 1)) == 2.0
    assert HedgePolicy(enabled=False, after=2.0).delay(kind) is None
    assert HedgePolicy(after=30.0, timeout=30.0).delay(kind) is None  # the deadline comes first


def test_copies_stay_a_small_share_of_the_answered_requests() -> None:
    assert HedgePolicy.within_share(0, 0) and HedgePolicy.within_share(1, 0)
    assert not HedgePolicy.within_share(2, 0)
    assert not HedgePolicy.within_share(2, 19) and HedgePolicy.within_share(2, 20)
    assert HedgePolicy.within_share(6, 100) and not HedgePolicy.within_share(7, 100)


# -- the dispatcher -------------------------------------------------------------------------


def test_a_held_request_gets_one_copy_and_its_answer_is_the_one_cached(
    wire_server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The held request is among the first sent, before any answer to compare with: it is
    looked at again and gets its copy once the others have answered."""
    monkeypatch.setattr("instructgen.hedging.HEDGE_FLOOR", 0.5)
    wire_server.inject("hang", retry_after=HOLD, match=held_once("q 3"))
    cache = Cache(tmp_path / "cache.sqlite3")
    d = Dispatcher(
        make_engine(wire_server, "openai"), config=DispatchConfig(concurrency=8), cache=cache
    )
    started = time.monotonic()
    out = run(d, requests(100))
    assert time.monotonic() - started < HOLD / 2  # nobody waited for the held request
    assert all(isinstance(c, Completion) for c in out)
    sent = [c.prompt for c in wire_server.calls]
    assert sent.count("q 3") == 2  # the held attempt and its copy
    assert d.stats.hedged >= 1 and d.stats.hedges_first >= 1
    assert len(sent) == 100 + d.stats.hedged  # a copy is the only second call
    assert d.stats.sent == 100 and d.stats.completed == 100 and d.stats.retried == 0
    hit = cache.get(d.key(requests(100)[3]))
    assert hit is not None and hit.texts == out[3].texts  # type: ignore[attr-defined]
    report = d.stats.to_dict()
    assert report["hedges_sent"] == d.stats.hedged >= 1
    assert report["hedges_answered_first"] == d.stats.hedges_first >= 1


def test_a_copy_shares_its_originals_slot(wire_server: WireServer) -> None:
    """One request, one slot: with ``--concurrency 1`` the held request still gets its copy,
    sent alongside it."""
    wire_server.inject("hang", retry_after=HOLD, match=held_once("q 0"))
    d = Dispatcher(
        make_engine(wire_server, "openai"),
        config=DispatchConfig(concurrency=1, hedge_after=0.3),
    )
    started = time.monotonic()
    out = run(d, requests(3))
    assert time.monotonic() - started < HOLD / 2
    assert all(isinstance(c, Completion) for c in out)
    assert d.stats.hedged == 1 and d.stats.hedges_first == 1 and d.stats.retried == 0
    assert len(wire_server.calls) == 4  # the three requests and one copy


def test_a_failed_copy_is_followed_by_another(wire_server: WireServer) -> None:
    """The copy of a held request is refused (HTTP 500): another copy follows after the
    backoff, instead of waiting out the hold."""
    wire_server.inject("hang", retry_after=HOLD, match=held_once("q 1"))
    wire_server.inject("500", match=held_once("q 1"))  # the first copy
    d = Dispatcher(
        make_engine(wire_server, "openai"),
        config=DispatchConfig(concurrency=4, hedge_after=0.3, backoff_base=0.05),
    )
    started = time.monotonic()
    out = run(d, requests(4))
    assert time.monotonic() - started < HOLD / 2
    assert all(isinstance(c, Completion) for c in out)
    assert [c.prompt for c in wire_server.calls].count("q 1") == 3
    assert d.stats.hedged == 2 and d.stats.hedges_first == 1
    assert sum(d.stats.errors.values()) == 1  # the refused copy


def test_hedge_off_sends_every_attempt_once(wire_server: WireServer) -> None:
    wire_server.inject("hang", retry_after=1.5, match=held_once("q 2"))
    d = Dispatcher(
        make_engine(wire_server, "openai"),
        config=DispatchConfig(concurrency=4, hedge=False, hedge_after=0.2, backoff_base=0.01),
    )
    out = run(d, requests(6))
    assert all(isinstance(c, Completion) for c in out)
    assert d.stats.hedged == 0 and d.stats.retried == 1
    assert [c.prompt for c in wire_server.calls].count("q 2") == 2  # the hold, then the retry


def test_a_server_holding_many_requests_gets_few_copies(wire_server: WireServer) -> None:
    """Six requests held at once: two copies (the spare), not six; the other four are
    retried when the server drops them."""
    wire_server.inject(
        "hang", times=6, retry_after=1.5, match=lambda call: call.prompt.startswith("h")
    )
    d = Dispatcher(
        make_engine(wire_server, "openai"),
        config=DispatchConfig(concurrency=16, hedge_after=0.3, backoff_base=0.01),
    )
    out = run(d, requests(6, "h"))
    assert all(isinstance(c, Completion) for c in out)
    assert d.stats.hedged == 2 and d.stats.hedges_first == 2
    assert d.stats.retried == 4


def test_a_copy_waits_for_the_budget(wire_server: WireServer) -> None:
    """With ``--max-cost`` leaving room for the requests in flight only, no copy is sent."""
    wire_server.inject("hang", retry_after=1.5, match=held_once("q 0"))
    engine = make_engine(wire_server, "openai", model="gpt-4o-mini")
    probe = Dispatcher(engine)
    worst = probe.worst_case_cost(requests(1)[0])
    d = Dispatcher(
        make_engine(wire_server, "openai", model="gpt-4o-mini"),
        config=DispatchConfig(
            concurrency=4, hedge_after=0.2, backoff_base=0.01, max_cost=worst * 1.5
        ),
    )
    out = run(d, requests(1))
    assert isinstance(out[0], Completion)
    assert d.stats.hedged == 0


# -- a whole run ------------------------------------------------------------------------------


def bootstrap_held(server: WireServer, nth: int) -> None:
    """Hold the ``nth`` bootstrap request (counting from 1) for ``HOLD`` seconds, once."""
    lock = threading.Lock()
    seen = [0]

    def match(call: WireCall) -> bool:
        if "Come up with a series of tasks" not in call.prompt:
            return False
        with lock:
            seen[0] += 1
            return seen[0] == nth

    server.inject("hang", retry_after=HOLD, match=match)


@pytest.mark.parametrize("engine", ["openai", "openai-completions"])
def test_a_held_bootstrap_request_does_not_hold_up_the_run_or_change_its_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    monkeypatch.setattr("instructgen.hedging.HEDGE_FLOOR", 0.5)
    tasks = tmp_path / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    args = ["-n", "60", "--num-instructions", "150", "--concurrency", "8", "--json"]
    args += ["--format", "jsonl"]
    if engine == "openai-completions":
        args += ["--prompts-per-request", "4"]
    datasets, reports = [], []
    for held in (False, True):
        with WireServer() as server:
            server.responder = respond
            if held:
                bootstrap_held(server, 30)
            env = engine_env(server, engine)
            monkeypatch.setenv(env["key_var"], env["key"])
            out = tmp_path / f"out-{held}"
            started = time.monotonic()
            r = CliRunner().invoke(
                cli,
                [
                    *("generate", str(tasks), "--engine", engine),
                    *("--base-url", env["base_url"], "--out", str(out), *args),
                ],
            )
            assert r.exit_code == 0, r.stderr
            if held:
                assert time.monotonic() - started < HOLD / 2  # the hold was not waited out
                boot = [c for c in server.calls if "Come up with a series" in c.prompt]
                assert len(boot) > 30  # the 30th was held, with answers enough before it
            datasets.append((out / "dataset.jsonl").read_bytes())
            reports.append(json.loads((out / "run.json").read_text())["requests"])
    assert datasets[0] == datasets[1]
    assert reports[0]["hedges_sent"] == 0
    assert reports[1]["hedges_sent"] >= 1 and reports[1]["hedges_answered_first"] >= 1
    assert reports[1]["retries"] == 0  # the copy answered: the held attempt never failed


def test_a_copy_goes_ahead_of_the_requests_queued_for_a_slot(wire_server: WireServer) -> None:
    """Every slot busy and many requests queued: the held request's copy takes the next free
    slot, not the last."""
    wire_server.latency = 0.05
    wire_server.inject("hang", retry_after=HOLD, match=held_once("q 5"))
    d = Dispatcher(
        make_engine(wire_server, "openai"),
        config=DispatchConfig(concurrency=4, hedge_after=0.5),
    )
    out = run(d, requests(200))
    assert all(isinstance(c, Completion) for c in out)
    sent = [c.prompt for c in wire_server.calls]
    assert d.stats.hedged == 1 and sent.count("q 5") == 2
    copy_at = len(sent) - 1 - sent[::-1].index("q 5")
    assert copy_at < len(sent) - 100  # sent while more than 100 requests still waited

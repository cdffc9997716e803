"""List prompts on completion endpoints: the dispatcher sends independent requests of the same
parameters in one ``/v1/completions`` request (``prompt`` as a list), over the real OpenAI SDK
against the local wire server, and splits the choices back by ``index``."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import SHARED, engine_env, make_engine
from selfinstruct_responder import respond
from wire_server import WireCall, WireServer

import instructgen
from instructgen import Completion, Engine, EngineError, ListCompletion, Request, Usage
from instructgen.cache import Cache
from instructgen.cli import cli
from instructgen.dispatch import DispatchConfig, Dispatcher
from instructgen.errors import BudgetExceededError
from instructgen.prompt_lists import split_usage


def prompts(count: int, tag: str = "p", **params: Any) -> list[Request]:
    return [
        Request(
            prompt=f"{tag} {i}: write a sentence about topic {i}." + " more" * (i % 7), **params
        )
        for i in range(count)
    ]


def run(
    server: WireServer,
    requests: Sequence[Request],
    *,
    cache: Path | None = None,
    engine: str = "openai-completions",
    **config: Any,
) -> tuple[list[Completion | EngineError], Dispatcher]:
    eng = make_engine(server, engine)

    async def go() -> tuple[list[Completion | EngineError], Dispatcher]:
        c = Cache(cache) if cache is not None else None
        try:
            async with Dispatcher(eng, config=DispatchConfig(**config), cache=c) as d:
                out = await d.complete_many(requests)
        finally:
            if c is not None:
                c.close()
        return out, d

    return asyncio.run(go())


def settled(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait for the server thread's counters: it counts an answer once it has written it."""
    import time

    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def alone(server: WireServer, request: Request) -> str:
    """What the server answers ``request``'s prompt when it comes alone."""
    body = {"prompt": request.as_prompt()}
    return str(server.responder(WireCall("openai", "completion", "/v1/completions", body, None)))


# -- coalescing and splitting ----------------------------------------------------------------------


def test_requests_share_wire_requests_and_each_gets_its_own_answer(
    wire_server: WireServer,
) -> None:
    wire_server.shuffle_choices = True  # choices out of order: split by index, not position
    reqs = prompts(45, max_tokens=30)
    out, d = run(wire_server, reqs)
    assert sorted(wire_server.list_sizes) == [5, 20, 20]
    assert len(wire_server.calls) == 3
    for r, c in zip(reqs, out, strict=True):
        assert isinstance(c, Completion)
        assert c.texts == (alone(wire_server, r),)
    s = d.stats.to_dict()
    assert s["requests_sent"] == 3 and s["prompts_sent"] == 45
    assert s["requests_completed"] == 45 and s["requests_with_several_prompts"] == 3


def test_n_choices_per_prompt_are_split_by_index(wire_server: WireServer) -> None:
    """index = prompt position × n + choice; the responder gives each sample its own text."""
    wire_server.shuffle_choices = True

    def samples(call: WireCall) -> list[str]:
        return [f"{call.prompt[:6]} sample {j}" for j in range(int(call.body.get("n") or 1))]

    wire_server.responder = samples
    reqs = prompts(7, n=3)
    out, _ = run(wire_server, reqs)
    assert wire_server.list_sizes == [7]
    for r, c in zip(reqs, out, strict=True):
        assert isinstance(c, Completion)
        assert c.texts == tuple(f"{r.as_prompt()[:6]} sample {j}" for j in range(3))
        assert c.finish_reasons == ("stop",) * 3


def test_only_requests_of_the_same_parameters_share_a_request(wire_server: WireServer) -> None:
    reqs = [
        *prompts(6, "a", max_tokens=10),
        *prompts(6, "b", max_tokens=11),
        *prompts(6, "c", max_tokens=10, stop=("\n\n",)),
        *prompts(6, "d", max_tokens=10, temperature=0.0),
    ]
    out, _ = run(wire_server, reqs)
    assert sorted(wire_server.list_sizes) == [6, 6, 6, 6]
    for call in wire_server.calls:  # each list holds one kind of prompt only
        assert len({p.split()[0] for p in call.body["prompt"]}) == 1
    assert all(isinstance(c, Completion) for c in out)


def test_the_list_size_is_capped_and_1_sends_one_prompt_a_request(
    wire_server: WireServer,
) -> None:
    run(wire_server, prompts(25), prompts_per_request=8)
    assert sorted(wire_server.list_sizes) == [8, 8, 8]  # and one request alone
    assert len(wire_server.calls) == 4
    wire_server.reset_counts()
    _, d = run(wire_server, prompts(10, "q"), prompts_per_request=1)
    assert wire_server.list_sizes == [] and len(wire_server.calls) == 10
    assert d.stats.sent == d.stats.prompts_sent == 10


def test_a_lone_request_goes_out_without_waiting_for_a_full_list(
    wire_server: WireServer,
) -> None:
    """One pending request is sent after the gathering delay, not when 20 have arrived."""
    out, _ = run(wire_server, prompts(1), prompt_list_delay=0.005)
    assert isinstance(out[0], Completion)
    assert wire_server.list_sizes == [] and len(wire_server.calls) == 1


def test_a_list_is_one_request_for_the_concurrency_and_the_rpm_limit(
    wire_server: WireServer,
) -> None:
    """--rpm 60 (one a second, no burst) and 2 in flight: 60 prompts go in 3 lists of 20,
    each one request for both limits. Counted per prompt, the RPM cap alone would take a
    minute."""
    import time

    wire_server.latency = 0.1
    started = time.monotonic()
    out, d = run(wire_server, prompts(60), rpm=60, concurrency=2)
    elapsed = time.monotonic() - started
    assert all(isinstance(c, Completion) for c in out)
    assert sorted(wire_server.list_sizes) == [20, 20, 20]
    assert wire_server.max_in_flight <= 2
    assert d.stats.sent == 3 and d.stats.prompts_sent == 60
    assert elapsed < 30, elapsed  # about 2 s: 3 requests at one a second


def test_a_list_keeps_filling_while_the_dispatcher_has_no_room(wire_server: WireServer) -> None:
    """One request in flight at --concurrency 1; 15 more arrive one every 10 ms meanwhile:
    they wait together and go as one list when the slot frees, not as lists of one."""
    wire_server.latency = 0.3
    eng = make_engine(wire_server, "openai-completions")
    reqs = prompts(16)

    async def go() -> list[Completion]:
        async with Dispatcher(eng, config=DispatchConfig(concurrency=1)) as d:
            first = asyncio.ensure_future(d.complete(reqs[0]))
            later = []
            for r in reqs[1:]:
                await asyncio.sleep(0.01)
                later.append(asyncio.ensure_future(d.complete(r)))
            return list(await asyncio.gather(first, *later))

    out = asyncio.run(go())
    assert [c.text for c in out] == [alone(wire_server, r) for r in reqs]
    assert len(wire_server.calls) == 2 and wire_server.list_sizes == [15]


# -- the cache -------------------------------------------------------------------------------------


def test_each_answer_is_cached_on_its_own_across_list_sizes(
    wire_server: WireServer, tmp_path: Path
) -> None:
    cache = tmp_path / "cache.sqlite3"
    reqs = prompts(30)
    first, _ = run(wire_server, reqs, cache=cache, prompts_per_request=20)
    assert sorted(wire_server.list_sizes) == [10, 20]
    wire_server.reset_counts()
    for size in (1, 7, 20):
        again, d = run(wire_server, reqs, cache=cache, prompts_per_request=size)
        assert len(wire_server.calls) == 0 and d.stats.sent == 0
        assert d.stats.cached == 30
        assert [c.texts for c in again] == [c.texts for c in first]  # type: ignore[union-attr]
    # answers cached by single requests are found by lists too
    singles = prompts(12, "single")
    run(wire_server, singles, cache=cache, prompts_per_request=1)
    wire_server.reset_counts()
    _, d = run(wire_server, singles, cache=cache)
    assert len(wire_server.calls) == 0 and d.stats.cached == 12


# -- failures --------------------------------------------------------------------------------------


def test_a_failed_list_is_retried_and_nothing_is_paid_twice(wire_server: WireServer) -> None:
    wire_server.inject("500", times=1)
    wire_server.inject("429", times=1, retry_after=0.05)
    reqs = prompts(20)
    out, d = run(wire_server, reqs, backoff_base=0.01)
    assert all(isinstance(c, Completion) for c in out)
    assert wire_server.failures["500"] == 1 and wire_server.failures["429"] == 1
    assert wire_server.list_sizes == [20, 20, 20]  # sent again as a list
    assert d.stats.retried == 2 and d.stats.failed == 0
    settled(lambda: wire_server.prompts_answered >= 20)  # counted after the reply is written
    assert wire_server.prompts_answered == 20 and not wire_server.paid_twice()


def test_a_list_failing_for_good_sends_its_prompts_alone(wire_server: WireServer) -> None:
    """HTTP 400 on a list (say, one prompt too long): each prompt then goes alone, so only
    the bad one fails; the others are answered."""
    bad = "p 3:"

    wire_server.inject("400", times=1, match=lambda c: isinstance(c.body.get("prompt"), list))
    wire_server.inject("400", times=1, match=lambda c: c.body.get("prompt", "").startswith(bad))
    reqs = prompts(6)
    out, d = run(wire_server, reqs)
    assert wire_server.list_sizes == [6]
    failed = [
        r.as_prompt()[:4] for r, c in zip(reqs, out, strict=True) if not isinstance(c, Completion)
    ]
    assert failed == [bad]
    assert d.stats.failed == 1 and d.stats.completed == 5
    assert d.lists.refused is None  # one prompt failed alone too: the server takes lists


def test_a_server_refusing_lists_is_sent_one_prompt_a_request(
    wire_server: WireServer, caplog: pytest.LogCaptureFixture
) -> None:
    wire_server.refuse_lists = True
    out, d = run(wire_server, [*prompts(20), *prompts(20, "later", max_tokens=9)])
    assert all(isinstance(c, Completion) for c in out)
    assert d.lists.refused is not None
    assert len(wire_server.list_sizes) <= 2  # found out at once, then one prompt a request
    assert "does not take several prompts" in caplog.text


def test_a_missing_choice_is_asked_again_alone(wire_server: WireServer) -> None:
    wire_server.drop_choices = lambda call: call.prompt.startswith(("p 2:", "p 5:"))
    dropped = {"p 2:": 0, "p 5:": 0}

    def drop_once(call: WireCall) -> bool:
        head = call.prompt[:4]
        if head in dropped and not dropped[head]:
            dropped[head] += 1
            return True
        return False

    wire_server.drop_choices = drop_once
    reqs = prompts(8)
    out, d = run(wire_server, reqs)
    assert wire_server.list_sizes == [8]
    assert len(wire_server.calls) == 3  # the list, then the two prompts alone
    for r, c in zip(reqs, out, strict=True):
        assert isinstance(c, Completion) and c.text == alone(wire_server, r)
    assert d.stats.retried == 2 and d.stats.sent == 3 and d.stats.prompts_sent == 10


def test_a_server_answering_only_the_first_prompt_gets_one_prompt_a_request(
    wire_server: WireServer,
) -> None:
    wire_server.first_prompt_only = True
    out, d = run(wire_server, [*prompts(10), *prompts(10, "later", max_tokens=9)])
    assert all(isinstance(c, Completion) for c in out)
    assert d.lists.refused is not None


def test_malformed_choices_are_asked_again(wire_server: WireServer) -> None:
    """A reply whose choices lack an index or a text: those prompts go again alone."""
    engine = make_engine(wire_server, "openai-completions")
    from instructgen_openai import _prompt_list

    body = {
        "model": "m",
        "choices": [
            {"index": 1, "text": "second", "finish_reason": "stop"},
            {"text": "no index", "finish_reason": "stop"},
            {"index": 0, "text": None, "finish_reason": "stop"},
            {"index": 2, "text": "third", "finish_reason": "length"},
            {"index": 9, "text": "out of range"},
        ],
        "usage": {"prompt_tokens": 30, "completion_tokens": 9},
    }
    reply = _prompt_list(engine, body, 3, 1)
    assert reply.completions[0] is None
    assert reply.completions[1] is not None and reply.completions[1].texts == ("second",)
    assert reply.completions[2] is not None and reply.completions[2].finish_reasons == ("length",)
    assert reply.usage == Usage(30, 9)


# -- usage, cost and the budget --------------------------------------------------------------------


def test_usage_is_split_in_proportion_and_adds_up(wire_server: WireServer, tmp_path: Path) -> None:
    short = Request(prompt="Hi.", max_tokens=50)
    long = Request(prompt="Please write a long sentence about the sea. " * 10, max_tokens=50)
    shares = split_usage(
        Usage(110, 40),
        [short, long],
        [Completion(("a" * 10,)), Completion(("b" * 30,))],
    )
    assert sum(u.prompt_tokens for u in shares) == 110
    assert sum(u.completion_tokens for u in shares) == 40
    assert shares[1].prompt_tokens > 100 and shares[0].prompt_tokens >= 1
    assert shares[0].completion_tokens == 10 and shares[1].completion_tokens == 30
    # a missing answer is charged its prompt, no completion
    third = split_usage(
        Usage(9, 7), [short, short, short], [Completion(("x",)), None, Completion(("y",))]
    )
    assert [u.prompt_tokens for u in third] == [3, 3, 3]
    assert third[1].completion_tokens == 0 and sum(u.completion_tokens for u in third) == 7

    # over the wire: the cached answers' usage adds up to what the server billed
    cache = tmp_path / "cache.sqlite3"
    reqs = prompts(9)
    out, d = run(wire_server, reqs, cache=cache)
    billed = d.stats.usage
    assert billed.prompt_tokens > 0 and billed.completion_tokens > 0
    assert sum(c.usage.prompt_tokens for c in out) == billed.prompt_tokens  # type: ignore[union-attr]
    assert sum(c.usage.completion_tokens for c in out) == billed.completion_tokens  # type: ignore[union-attr]
    assert d.stats.cost == pytest.approx(d._price.cost(billed))  # type: ignore[union-attr]


def test_max_cost_reserves_the_worst_case_of_every_prompt(wire_server: WireServer) -> None:
    """A list reserves the worst case of all its prompts. Under a budget that fits 4 prompts'
    worst case, a list of 10 does not fit: its prompts go alone, each reserving its own, and
    the run stops at the budget with 4 in flight. Under one that fits 12, the list goes out."""
    wire_server.latency = 0.3  # the prompts sent alone are in flight together
    eng = make_engine(wire_server, "openai-completions")
    reqs = prompts(10, max_tokens=1000)
    worst = Dispatcher(eng).worst_case_cost(reqs[0])

    async def go(budget: float) -> tuple[Dispatcher, BaseException | None]:
        err: BaseException | None = None
        async with Dispatcher(eng, config=DispatchConfig(max_cost=budget)) as d:
            try:
                await asyncio.gather(*(d.complete(r) for r in reqs))
            except BudgetExceededError as exc:
                err = exc
        return d, err

    d, err = asyncio.run(go(worst * 4.5))
    assert isinstance(err, BudgetExceededError)
    assert wire_server.list_sizes == []  # the list was never sent
    assert 1 <= len(wire_server.calls) <= 4
    assert d.stats.cost <= worst * 4.5
    wire_server.reset_counts()
    d, err = asyncio.run(go(worst * 12))
    assert err is None and wire_server.list_sizes == [10] and d.stats.completed == 10


# -- engines without the capability ----------------------------------------------------------------


class OnePromptEngine(Engine):
    """A third-party engine that declares nothing: one prompt a request, as before."""

    name = "one-prompt"
    kind = "completion"
    needs_key = False

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.seen: list[str] = []

    async def acomplete(self, request: Request) -> Completion:
        self.seen.append(request.as_prompt())
        await asyncio.sleep(0)
        return Completion((f"answer to {request.as_prompt()}",), usage=Usage(3, 4))


def test_an_engine_without_the_capability_is_unchanged(wire_server: WireServer) -> None:
    eng = OnePromptEngine()
    reqs = prompts(30)

    async def go() -> tuple[list[Completion | EngineError], Dispatcher]:
        async with Dispatcher(eng) as d:
            return await d.complete_many(reqs), d

    out, d = asyncio.run(go())
    assert d.lists is None
    assert len(eng.seen) == 30
    assert [c.text for c in out] == [f"answer to {r.as_prompt()}" for r in reqs]  # type: ignore[union-attr]
    assert d.stats.sent == d.stats.prompts_sent == 30 and d.stats.list_requests == 0
    # the chat engine (no list prompts on /chat/completions) neither
    _, dc = run(wire_server, [Request.chat(f"chat {i}") for i in range(5)], engine="openai")
    assert dc.lists is None and len(wire_server.calls) == 5 and not wire_server.list_sizes


class ListEngine(OnePromptEngine):
    """A third-party engine that declares the capability (the plugin guide's example)."""

    name = "list-engine"
    max_prompts_per_request = 4

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.lists: list[int] = []

    async def acomplete_prompts(self, requests: Sequence[Request]) -> ListCompletion:
        self.lists.append(len(requests))
        return ListCompletion(
            tuple(Completion((f"answer to {r.as_prompt()}",)) for r in requests),
            usage=Usage(3 * len(requests), 4 * len(requests)),
        )


def test_a_third_party_engine_declares_the_capability() -> None:
    eng = ListEngine()

    async def go() -> list[Completion | EngineError]:
        async with Dispatcher(eng, config=DispatchConfig(prompts_per_request=20)) as d:
            return await d.complete_many(prompts(10))

    out = asyncio.run(go())
    assert sorted(eng.lists) == [2, 4, 4] and eng.seen == []  # capped at the engine's 4
    assert all(isinstance(c, Completion) for c in out)


# -- a Self-Instruct run ---------------------------------------------------------------------------


def generate(server: WireServer, tasks: Path, out: Path, *extra: str) -> dict[str, Any]:
    env = engine_env(server, "openai-completions")
    r = CliRunner(env={env["key_var"]: env["key"]}).invoke(
        cli,
        [
            "generate",
            str(tasks),
            "--engine",
            "openai-completions",
            "--base-url",
            env["base_url"],
            "--out",
            str(out),
            "-n",
            "40",
            "--num-instructions",
            "40",
            "--json",
            *extra,
        ],
    )
    assert r.exit_code == 0, r.output
    return dict(json.loads((out / "run.json").read_text()))


def test_a_self_instruct_run_with_lists_reruns_from_the_cache_with_one_prompt_a_request(
    wire_server: WireServer, tmp_path: Path
) -> None:
    tasks = tmp_path / "seed_tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    wire_server.responder = respond
    out = tmp_path / "out"
    report = generate(wire_server, tasks, out)
    req = report["requests"]
    assert req["prompts_sent"] > req["requests_sent"] > 0
    assert max(wire_server.list_sizes) > 1
    assert not wire_server.paid_twice()
    rows = (out / "data.jsonl").read_text() if (out / "data.jsonl").exists() else None
    wire_server.reset_counts()
    again = generate(wire_server, tasks, out, "--prompts-per-request", "1")
    assert len(wire_server.calls) == 0
    assert again["requests"]["requests_sent"] == 0
    assert again["requests"]["requests_cached"] == req["requests_completed"]
    if rows is not None:
        assert (out / "data.jsonl").read_text() == rows


def test_the_python_api_takes_the_setting(wire_server: WireServer, tmp_path: Path) -> None:
    assert DispatchConfig().prompts_per_request == 20
    with pytest.raises(instructgen.ConfigError):
        DispatchConfig(prompts_per_request=0)


KILL_SCRIPT = """
import sys
from instructgen.cli import main
main(sys.argv[1:])
"""


def test_kill_9_with_lists_then_rerun_equals_a_run_of_one_prompt_a_request(
    tmp_path: Path,
) -> None:
    """The dataset does not depend on the list size, and a run killed with lists in flight
    resumes from the cache: only the prompts of the lists in flight are paid again."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import TEST_KEY

    from instructgen import InstructionDataset

    tasks = tmp_path / "seed_tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    args = ["generate", str(tasks), "--engine", "openai-completions", "-n", "30"]
    args += ["--num-instructions", "25", "--concurrency", "2"]
    env = {**os.environ, "OPENAI_API_KEY": TEST_KEY}

    def command(server: WireServer, out: Path, *extra: str) -> list[str]:
        where = ["--base-url", server.openai_base_url, "--out", str(out)]
        return [sys.executable, "-c", KILL_SCRIPT, *args, *where, *extra]

    with WireServer() as ref:
        ref.responder = respond
        cmd = command(ref, tmp_path / "ref", "--prompts-per-request", "1")
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=300)
        assert ref.list_sizes == []
    reference = InstructionDataset.load(tmp_path / "ref")
    with WireServer() as server:
        server.responder = respond
        server.latency = 0.1
        out = tmp_path / "killed"
        cmd = command(server, out, "--prompts-per-request", "5")
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while server.prompts_answered < 12 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert server.prompts_answered > 0
        assert not (out / "metadata.json").exists()  # it really died mid-run
        server.latency = 0
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        # at most the 2 lists in flight at the kill (5 prompts each) are paid again
        assert len(server.paid_twice()) <= 10, server.paid_twice()
        assert max(server.list_sizes) > 1
    assert InstructionDataset.load(out) == reference

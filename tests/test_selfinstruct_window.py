"""The sliding-window bootstrap and the overlapping stages: the dataset does not depend on
concurrency or timing, counts are exact at the tail, small targets send few requests, the
stages overlap, and filtering never holds the event loop."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import SHARED, TEST_KEY, make_engine
from selfinstruct_responder import respond
from wire_server import WireCall, WireServer

from instructgen import InstructionDataset
from instructgen.cli import cli
from instructgen.dispatch import DispatchConfig
from instructgen.filter import Filter
from instructgen.selfinstruct.options import SelfInstructOptions
from instructgen.selfinstruct.window import BootstrapWindow
from instructgen.tasks import load_tasks

SEED = SHARED / "data" / "seed_tasks.jsonl"
BOOTSTRAP = "Come up with a series of tasks"
CLASSIFY = "Is it classification?"

# Bootstrap requests main's rounds of 5 sent for these targets (seed 42, the 175 seed tasks,
# tests/selfinstruct_responder.py, any engine), measured before the window existed.
ROUNDS_OF_5 = {10: 5, 50: 20}


def jittery(seed: int) -> Any:
    """The responder, answering after a random 0-20 ms so that answers arrive out of order."""
    rng = random.Random(seed)
    lock = threading.Lock()

    def answer(call: WireCall) -> str:
        with lock:
            delay = rng.random() * 0.02
        time.sleep(delay)
        return respond(call)

    return answer


def run(
    server: WireServer, n: int, num_instructions: int, window: int | None = None, **kw: Any
) -> InstructionDataset:
    engine = make_engine(server, "openai")
    if window is not None:
        kw["self_instruct"] = SelfInstructOptions(window=window)
    return InstructionDataset.generate_dataset(
        str(SEED), engine, n, num_instructions, cache=False, **kw
    )


def kinds(server: WireServer) -> list[str]:
    """The server's calls in arrival order: b(ootstrap), c(lassify) or i(nstances)."""
    out = []
    for call in server.calls:
        p = call.prompt
        out.append("b" if BOOTSTRAP in p else "c" if CLASSIFY in p else "i")
    return out


def test_same_dataset_at_concurrency_1_8_64(wire_server: WireServer) -> None:
    dumps = {}
    for k in (1, 8, 64):
        wire_server.responder = jittery(k)
        ds = run(wire_server, 70, 60, window=8, config=DispatchConfig(concurrency=k))
        assert len(ds) == 70
        assert ds.run_report["instructions_generated"] == 60
        dumps[k] = json.dumps(ds.rows, sort_keys=True).encode()
    assert dumps[1] == dumps[8] == dumps[64]


def test_window_changes_the_prompts_but_not_the_exact_counts(wire_server: WireServer) -> None:
    wire_server.responder = respond
    a = run(wire_server, 40, 30, window=1)
    b = run(wire_server, 40, 30, window=64)
    assert len(a) == len(b) == 40
    assert a.rows != b.rows  # the window is part of what the dataset depends on


def test_prompt_i_uses_only_what_was_kept_before_answer_i_minus_window(
    wire_server: WireServer,
) -> None:
    wire_server.responder = respond
    seeds = {" ".join(t.instruction.split()).rstrip(":") for t in load_tasks(SEED)}
    run(wire_server, 50, 40, window=4, config=DispatchConfig(concurrency=1))
    boot = [c.prompt for c in wire_server.calls if BOOTSTRAP in c.prompt]
    listed = [
        [line.split(". ", 1)[1] for line in p.splitlines() if line[:1].isdigit() and ". " in line]
        for p in boot
    ]
    # at concurrency 1 the server sees the bootstrap requests in request order
    assert all(set(items) <= seeds for items in listed[:4])  # nothing was kept yet
    assert any(not set(items) <= seeds for items in listed[4:])  # the pool is used after


@pytest.mark.parametrize("target", [7, 13, 29, 50])
def test_exact_count_at_the_tail_and_little_waste(wire_server: WireServer, target: int) -> None:
    wire_server.responder = respond
    ds = run(wire_server, target + 5, target)
    report = ds.run_report
    assert report["instructions_generated"] == target  # never more, never fewer
    assert len({r["instruction"] for r in ds}) == target
    assert len(ds) == target + 5
    assert report["bootstrap_requests_unused"] <= 3
    boot = kinds(wire_server).count("b")
    assert boot == report["bootstrap_requests"] - report["bootstrap_requests_unused"] or (
        boot <= report["bootstrap_requests"]
    )


@pytest.mark.parametrize("target", sorted(ROUNDS_OF_5))
def test_small_targets_send_no_more_bootstrap_requests_than_rounds_of_5(
    wire_server: WireServer, target: int
) -> None:
    wire_server.responder = respond
    ds = run(wire_server, 5, target, seed=42)
    assert ds.run_report["instructions_generated"] == target
    assert ds.run_report["bootstrap_requests"] <= ROUNDS_OF_5[target]
    assert kinds(wire_server).count("b") <= ROUNDS_OF_5[target]


def test_classification_starts_before_the_bootstrap_ends(wire_server: WireServer) -> None:
    wire_server.responder = respond
    wire_server.latency = 0.02
    events: list[Any] = []
    ds = run(wire_server, 100, 100, config=DispatchConfig(concurrency=16), progress=events.append)
    assert ds.run_report["instructions_generated"] == 100
    # progress: each stage reports its own count, and they interleave
    stages = [e.stage for e in events if e.stage != "requests"]
    assert stages.index("classify") < len(stages) - 1 - stages[::-1].index("bootstrap")
    last = {e.stage: e for e in events}
    assert all(last[s].done == last[s].total == 100 for s in ("bootstrap", "classify", "instances"))
    order = kinds(wire_server)
    last_bootstrap = max(i for i, k in enumerate(order) if k == "b")
    first_classify = order.index("c")
    first_instances = order.index("i")
    assert first_classify < last_bootstrap
    assert first_instances < last_bootstrap
    # the overlap is substantial, not one stray request
    assert order[:last_bootstrap].count("c") >= 20


def test_rerun_at_another_concurrency_is_all_cached(seed_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    results = []
    with WireServer() as server:
        server.responder = jittery(3)
        for k in ("64", "1"):
            r = CliRunner().invoke(
                cli,
                [
                    "generate",
                    str(seed_copy),
                    "--engine",
                    "openai",
                    "--base-url",
                    server.openai_base_url,
                    "--out",
                    str(out),
                    "-n",
                    "40",
                    "--num-instructions",
                    "30",
                    "--window",
                    "6",
                    "--concurrency",
                    k,
                    "--json",
                ],
                env={"OPENAI_API_KEY": TEST_KEY},
            )
            assert r.exit_code == 0, r.stderr
            results.append((json.loads(r.stdout), InstructionDataset.load(out)))
        sent_first = results[0][0]["requests"]["requests_completed"]
        assert len(server.calls) == sent_first  # the rerun sent nothing
    assert results[1][0]["requests"]["requests_completed"] == 0
    assert results[1][1] == results[0][1]
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["requested"]["window"] == 6


@pytest.fixture
def seed_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "seed_tasks.jsonl"
    shutil.copy(SEED, dst)
    return dst


class SlowFilter(Filter):
    """A filter that computes for 150 ms per candidate (a ROUGE check against a huge pool)."""

    name = "slow"

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[tuple[float, float]] = []

    def check(self, item: Any) -> str | None:
        start = time.perf_counter()
        end = start + 0.15
        while time.perf_counter() < end:
            pass
        self.spans.append((start, time.perf_counter()))
        return None


def test_filtering_never_holds_the_event_loop(wire_server: WireServer) -> None:
    wire_server.responder = respond
    engine = make_engine(wire_server, "openai")
    gaps: list[tuple[float, float]] = []
    slow = SlowFilter()

    async def main() -> InstructionDataset:
        stop = asyncio.Event()

        async def watch() -> None:
            last = time.perf_counter()
            while not stop.is_set():
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                gaps.append((last, now))
                last = now

        watcher = asyncio.ensure_future(watch())
        try:
            return await InstructionDataset.agenerate_dataset(
                str(SEED), engine, 6, 6, cache=False, filters=[slow]
            )
        finally:
            stop.set()
            await watcher

    ds = asyncio.run(main())
    assert ds.run_report["instructions_generated"] == 6
    # the loop kept turning while the filter computed (6 candidates at least, 150 ms each)
    first, last = slow.spans[0][0], slow.spans[-1][1]
    during = [b - a for a, b in gaps if a >= first and b <= last]
    assert len(slow.spans) >= 6 and len(during) > 10
    # each check computes for 150 ms: on the loop, gaps would be at least that long (the bound
    # leaves room for the OS scheduler on a busy machine)
    assert max(during) < 0.14, max(during)


@pytest.mark.parametrize("window", [1, 4, 64])
def test_bootstrap_window_bookkeeping(window: int) -> None:
    rng = random.Random(window)
    waste = []
    for target in [1, 10, 50, 333, 2000] * 20:
        plan = BootstrapWindow(target, window)
        pool_sizes: dict[int, int] = {}
        while True:
            while plan.may_issue():
                assert plan.in_flight < window
                i, pool = plan.issue()
                pool_sizes[i] = pool
            if not plan.in_flight:
                break
            added = min(rng.randint(2, 6), target - plan.kept)  # 4-7 listed, some dropped
            plan.record(added)
            assert plan.kept <= target
            if plan.kept == target:
                break
        assert plan.kept == target
        waste.append(plan.in_flight)
        # request i draws from the pool as it was after results 0 .. i - window
        kept_after = plan._kept_after
        assert all(pool_sizes[i] == kept_after[max(0, i - window + 1)] for i in pool_sizes)
    # tail waste (requests in flight when the target is reached): a few requests
    assert sum(waste) / len(waste) <= 3 and max(waste) <= 15


def test_bootstrap_window_gives_up_when_nothing_new_comes() -> None:
    plan = BootstrapWindow(100, 8, max_stalled=10)
    sent = 0
    while True:
        while plan.may_issue():
            plan.issue()
            sent += 1
        if not plan.in_flight:
            break
        plan.record(0)
    assert plan.stalled >= 10 and sent <= 10 + 8
    failing = BootstrapWindow(100, 64)
    while failing.may_issue():
        failing.issue()
    for _ in range(5):
        failing.record(0, failed=True)
    assert failing.gave_up() and not failing.may_issue()


def test_a_wrong_key_in_a_follow_up_request_stops_the_run(wire_server: WireServer) -> None:
    from instructgen.errors import AuthenticationError

    wire_server.responder = respond
    wire_server.latency = 0.01
    wire_server.inject("401", times=1, match=lambda c: CLASSIFY in c.prompt)
    started = time.monotonic()
    with pytest.raises(AuthenticationError):
        run(wire_server, 200, 200, config=DispatchConfig(concurrency=8))
    assert time.monotonic() - started < 30
    # it stopped soon after the first classification request: no run to the end
    assert kinds(wire_server).count("c") < 50


def test_failed_follow_up_requests_are_counted_and_the_run_goes_on(
    wire_server: WireServer,
) -> None:
    wire_server.responder = respond
    wire_server.inject("400", times=3, match=lambda c: "Come up with examples" in c.prompt)
    ds = run(wire_server, 20, 20)
    assert ds.run_report["failed_requests"] == 3
    assert ds.run_report["instructions_generated"] == 20
    assert ds.run_report["tasks_with_instances"] <= 17


KILL_SCRIPT = """
import sys
from instructgen.cli import main
main(sys.argv[1:])
"""


def test_kill_9_then_resume_at_another_concurrency(seed_copy: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    args = ["generate", str(seed_copy), "--engine", "openai", "-n", "50", "--num-instructions"]
    args += ["40", "--window", "8"]
    env = {**os.environ, "OPENAI_API_KEY": TEST_KEY}

    def command(server: WireServer, out: Path, concurrency: int) -> list[str]:
        where = ["--base-url", server.openai_base_url, "--out", str(out)]
        return [sys.executable, "-c", KILL_SCRIPT, *args, "--concurrency", str(concurrency), *where]

    with WireServer() as ref:  # uninterrupted, at 64
        ref.responder = jittery(1)
        cmd = command(ref, tmp_path / "ref", 64)
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=300)
    reference = InstructionDataset.load(tmp_path / "ref")
    with WireServer() as server:
        server.responder = jittery(2)
        server.latency = 0.03
        out = tmp_path / "killed"
        proc = subprocess.Popen(
            command(server, out, 16), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while sum(server.successes.values()) < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not (out / "metadata.json").exists()  # it died mid-run
        server.latency = 0
        done = subprocess.run(
            command(server, out, 3), env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        # only requests in flight at the kill (at most 16) were answered twice
        assert len(server.paid_twice()) <= 16, server.paid_twice()
    assert InstructionDataset.load(out) == reference


def test_when_every_bootstrap_request_fails_it_stops_after_a_few(
    wire_server: WireServer, caplog: pytest.LogCaptureFixture
) -> None:
    wire_server.responder = respond
    wire_server.inject("500", times=10_000, match=lambda c: BOOTSTRAP in c.prompt)
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="instructgen"):
        ds = run(wire_server, 5, 500, config=DispatchConfig(backoff_base=0.1, backoff_max=0.2))
    assert len(ds) == 0
    assert ds.run_report["failed_requests"] == 5  # the rest, still retrying, were cancelled
    assert "all 5 bootstrap requests failed" in caplog.text
    assert time.monotonic() - started < 20

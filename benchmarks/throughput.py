"""Dispatcher throughput against a local OpenAI-format server (benchmarks/_server.py, asyncio,
in its own process) that answers every request after exactly 200 ms.

    python benchmarks/throughput.py [--requests 2000] [--latency 0.2] [--sequential 40]
    python benchmarks/throughput.py --method alpaca --examples 20000 [--repeat 3]
    python benchmarks/throughput.py --no-hedge     # without copies of late requests

With ``--method``, each run has a server of its own and the rate is the server's (requests
answered from the first arrival to the last answer); right after each run the same number of
requests goes straight through a ``Dispatcher`` against a fresh server, for the ceiling the
machine allowed that minute.

One at a time (how xTuring and the Self-Instruct scripts call the API) vs the dispatcher at
concurrency 64 (repeated ``--repeat`` times, median shown), and with an RPM cap, all in the
same run. Each run first sends one untimed request (SDK import and client set-up). The
one-at-a-time rate is measured on ``--sequential`` requests (2,000 of them would take 400 s)
and stated as such. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from instructgen import Request
from instructgen.dispatch import DispatchConfig, Dispatcher
from instructgen.engines import create_engine
from instructgen.method import RunSize
from instructgen.runs import run_method as run_method_

HERE = Path(__file__).resolve().parent
HEDGE = True  # --no-hedge: no copies of late requests (the dispatcher's cost per request)


def start_server(latency: float, *extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_server.py"), str(latency), *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/v1"


async def run(base_url: str, n: int, config: DispatchConfig, tag: str) -> dict[str, float]:
    engine = create_engine("openai", api_key="bench", base_url=base_url)
    requests = [Request.chat(f"{tag} request {i}", max_tokens=16) for i in range(n)]
    async with Dispatcher(engine, config=config) as d:
        # One untimed request first: importing the SDK and building its client (about 0.5 s,
        # once per process) is not dispatcher throughput.
        await d.complete(Request.chat(f"{tag} warm-up", max_tokens=16))
        start = time.perf_counter()
        if config.concurrency == 1:
            for r in requests:
                await d.complete(r)
        else:
            await d.complete_many(requests)
        elapsed = time.perf_counter() - start
        assert d.stats.completed == n + 1, d.stats.to_dict()
    cpu = time.process_time()
    return {
        "requests": n,
        "seconds": round(elapsed, 3),
        "per_second": round(n / elapsed, 2),
        "process_cpu_s_so_far": round(cpu, 2),
    }


class LoopHolds:
    """How long the event loop's callbacks hold it: the CPU time of the loop's thread in each
    callback (``asyncio.Handle._run``), so time the GIL spent in the filters' worker thread
    is not counted as the loop's."""

    def __init__(self) -> None:
        self.holds: list[float] = []

    def __enter__(self) -> LoopHolds:
        self._run = original = asyncio.events.Handle._run
        holds = self.holds

        def timed(handle: asyncio.events.Handle) -> None:
            t = time.thread_time()
            original(handle)
            holds.append(time.thread_time() - t)

        asyncio.events.Handle._run = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.events.Handle._run = self._run  # type: ignore[method-assign]

    def summary(self) -> dict[str, Any]:
        h = sorted(self.holds) or [0.0]
        return {
            "loop_callbacks": len(self.holds),
            "loop_cpu_s": round(sum(self.holds), 2),
            "loop_hold_ms_max": round(h[-1] * 1000, 2),
            "loop_hold_ms_p999": round(h[int(len(h) * 0.999)] * 1000, 2),
            "loop_holds_over_5ms": sum(x > 0.005 for x in h),
        }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_method(
    base_url: str, method: str, examples: int, instructions: int, concurrency: int
) -> dict[str, Any]:
    """One generation method end to end (``runs.run_method``: the cache off, the filters on)
    against the server's plausible replies; requests a second over the whole run."""
    engine = create_engine("openai", api_key="bench", base_url=base_url)
    seeds = HERE.parent.parent / "shared" / "data" / "seed_tasks.jsonl"
    holds = LoopHolds()
    start = time.perf_counter()
    with holds:
        result = await run_method_(
            method,
            seeds,
            engine,
            size=RunSize(examples, instructions, 42),
            cache=False,
            config=DispatchConfig(hedge=HEDGE, concurrency=concurrency),
        )
    elapsed = time.perf_counter() - start
    sent = result.report["requests"]["requests_completed"]
    return {
        "examples": len(result.rows),
        "requests": sent,
        "seconds": round(elapsed, 3),
        "per_second": round(sent / elapsed, 2),
        "filters_s": result.report.get("timings", {}).get("filters_s"),
        **holds.summary(),
    }


def dispatcher_alone(a: argparse.Namespace, requests: int) -> float:
    """The same number of requests straight through a ``Dispatcher`` against a fresh server,
    right after the method's run: what the machine allowed that minute with no method (ramp,
    tail and the dispatcher's own cost included)."""
    proc, url = start_server(a.latency)
    try:
        config = DispatchConfig(hedge=HEDGE, concurrency=a.concurrency)
        return asyncio.run(run(url, requests, config, "alone"))["per_second"]
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)


def one_method_run(a: argparse.Namespace) -> dict[str, Any]:
    """One run against a server of its own, so the server's figures cover this run alone: the
    requests it answered from the first arrival to the last answer, and how many it held in
    each second."""
    proc, url = start_server(a.latency, "--selfinstruct")
    try:
        cpu0 = time.process_time()
        result = asyncio.run(run_method(url, a.method, a.examples, a.instructions, a.concurrency))
        result["client_cpu_s"] = round(time.process_time() - cpu0, 2)
        result["server_cpu_s"] = round(cpu_seconds(proc.pid), 2)
    finally:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        server = json.loads(proc.stdout.readline() or "{}")
        proc.wait(10)
    alone = dispatcher_alone(a, int(result["requests"]))
    return {
        **result,
        "dispatcher_alone_per_second": alone,
        "ratio_to_dispatcher_alone": round((server.get("per_second") or 0) / alone, 3),
        "server_per_second": server.get("per_second"),
        "server_span_s": server.get("span_s"),
        "server_max_in_flight": server.get("max_in_flight"),
        "server_in_flight_each_second": server.get("mean_in_flight_each_second"),
    }


def main_method(a: argparse.Namespace) -> None:
    """``--method NAME``: the method's own request mix at ``--concurrency``, median of
    ``--repeat`` runs (each a new run against a new server). The rate is the server's:
    requests answered from the first arrival to the last answer (``per_second`` there); the
    client's (requests over the whole call, set-up included) is shown beside it."""
    proc, url = start_server(a.latency)
    try:
        asyncio.run(run(url, 1, DispatchConfig(hedge=HEDGE, concurrency=1), "warm"))  # SDK import
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)
    runs = [one_method_run(a) for _ in range(a.repeat)]
    runs.sort(key=lambda r: r["server_per_second"] or 0.0)
    median = runs[len(runs) // 2]
    bound = a.concurrency / a.latency
    print(
        json.dumps(
            {
                "method": a.method,
                "latency_s": a.latency,
                "concurrency": a.concurrency,
                "cpus": os.cpu_count(),
                "load_average": os.getloadavg(),
                **median,
                "theoretical_per_second": bound,
                "fraction_of_theoretical": round((median["server_per_second"] or 0) / bound, 3),
                "fraction_of_theoretical_each_run": [
                    round((r["server_per_second"] or 0) / bound, 3) for r in runs
                ],
                "client_fraction_each_run": [round(r["per_second"] / bound, 3) for r in runs],
                "dispatcher_alone_fraction_each_run": [
                    round(r["dispatcher_alone_per_second"] / bound, 3) for r in runs
                ],
            },
            indent=2,
        )
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--method", default=None, help="measure a generation method end to end")
    p.add_argument("--examples", type=int, default=2000, help="with --method: rows wanted")
    p.add_argument(
        "--instructions", type=int, default=2000, help="with --method: new instructions cap"
    )
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--rpm", type=float, default=3000)
    p.add_argument("--sequential", type=int, default=40)
    p.add_argument("--repeat", type=int, default=3, help="concurrent runs; the median is shown")
    p.add_argument("--no-hedge", action="store_true", help="DispatchConfig(hedge=False)")
    a = p.parse_args()
    global HEDGE
    HEDGE = not a.no_hedge
    if a.method:
        main_method(a)
        return
    proc, url = start_server(a.latency)
    try:
        seq = asyncio.run(run(url, a.sequential, DispatchConfig(hedge=HEDGE, concurrency=1), "seq"))
        runs = []  # the machine is shared: repeat and report the median run, and all of them
        for i in range(a.repeat):
            cpu0 = time.process_time()
            server0 = cpu_seconds(proc.pid)
            conc = asyncio.run(
                run(
                    url,
                    a.requests,
                    DispatchConfig(hedge=HEDGE, concurrency=a.concurrency),
                    f"conc{i}",
                )
            )
            conc["client_cpu_ms"] = (time.process_time() - cpu0) / a.requests * 1000
            conc["server_cpu_ms"] = (cpu_seconds(proc.pid) - server0) / a.requests * 1000
            runs.append(conc)
        runs.sort(key=lambda r: r["per_second"])
        conc = runs[len(runs) // 2]
        cpu_per_request_ms = conc.pop("client_cpu_ms")
        server_ms = conc.pop("server_cpu_ms")
        capped = asyncio.run(
            run(
                url,
                a.requests // 2,
                DispatchConfig(hedge=HEDGE, concurrency=a.concurrency, rpm=a.rpm),
                "rpm",
            )
        )
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)
    bound = a.concurrency / a.latency
    rpm_bound = min(bound, a.rpm / 60)
    print(
        json.dumps(
            {
                "latency_s": a.latency,
                "cpus": os.cpu_count(),
                "one_at_a_time": {**seq, "note": f"measured on {a.sequential} requests"},
                "concurrency": {
                    **conc,
                    "concurrency": a.concurrency,
                    "theoretical_per_second": bound,
                    "fraction_of_theoretical": round(conc["per_second"] / bound, 3),
                    "fraction_of_theoretical_each_run": [
                        round(r["per_second"] / bound, 3) for r in runs
                    ],
                    "client_cpu_ms_per_request": round(cpu_per_request_ms, 3),
                    "server_cpu_ms_per_request": round(server_ms, 3),
                    "cores_busy": round(
                        (cpu_per_request_ms + server_ms) * conc["per_second"] / 1000, 2
                    ),
                },
                "rpm_capped": {
                    **capped,
                    "rpm": a.rpm,
                    "theoretical_per_second": rpm_bound,
                    "fraction_of_theoretical": round(capped["per_second"] / rpm_bound, 3),
                },
                "speedup_vs_one_at_a_time": round(conc["per_second"] / seq["per_second"], 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

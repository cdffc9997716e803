"""How long ``agenerate_dataset`` holds the caller's event loop, embedded in an async service:
a fresh interpreter (the first call pays every import, as a service's first request would)
runs ``InstructionDataset.agenerate_dataset(tasks, "openai:gpt-4o-mini", 6, 6)`` against
``benchmarks/_server.py --selfinstruct``, timing every loop callback in wall-clock time and in
CPU time on the loop thread. The promise: no callback holds the loop over 100 ms. The test
(tests/test_async_loop.py) checks the causes, which do not depend on the machine's load; this
measures the figure, which does.

    python benchmarks/loop_hold.py              # 5 runs
    python benchmarks/loop_hold.py --runs 10 -n 50

Prints JSON: each run's longest callback (wall and CPU ms, what it was), callbacks over
100 ms, callbacks in all; the worst over the runs; the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SEED = HERE.parents[1] / "shared" / "data" / "seed_tasks.jsonl"

SCRIPT = """
import asyncio, json, os, sys, time
from instructgen import InstructionDataset  # a service imports the library at start-up

stats = {"callbacks": 0, "over_100ms": 0, "wall_ms": 0.0, "cpu_ms": 0.0, "longest": ""}
run = asyncio.events.Handle._run

def timed_run(self):
    wall, cpu = time.perf_counter(), time.thread_time()
    try:
        return run(self)
    finally:
        wall = (time.perf_counter() - wall) * 1000
        cpu = (time.thread_time() - cpu) * 1000
        stats["callbacks"] += 1
        stats["over_100ms"] += wall > 100
        stats["cpu_ms"] = max(stats["cpu_ms"], cpu)
        if wall > stats["wall_ms"]:
            stats.update(wall_ms=wall, longest=repr(self)[:200])

asyncio.events.Handle._run = timed_run

async def main():
    ds = await InstructionDataset.agenerate_dataset(
        sys.argv[1], "openai:gpt-4o-mini", int(sys.argv[3]), int(sys.argv[3]), cache=False,
    )
    assert len(ds) == int(sys.argv[3]), len(ds)

os.environ["OPENAI_BASE_URL"] = sys.argv[2]
os.environ["OPENAI_API_KEY"] = "sk-bench"
asyncio.run(main())
stats["wall_ms"], stats["cpu_ms"] = round(stats["wall_ms"], 1), round(stats["cpu_ms"], 1)
print(json.dumps(stats))
"""


def one_run(a: argparse.Namespace) -> dict[str, Any]:
    server = subprocess.Popen(
        [sys.executable, str(HERE / "_server.py"), str(a.latency), "--selfinstruct"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    try:
        url = f"http://127.0.0.1:{int(server.stdout.readline())}/v1"
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(a.tasks), url, str(a.n)],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        server.stdin.close()
        server.wait(10)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("-n", type=int, default=6, help="examples (and instructions) to generate")
    p.add_argument("--latency", type=float, default=0.0, help="the server's seconds an answer")
    p.add_argument("--tasks", default=str(SEED))
    a = p.parse_args()
    runs = [one_run(a) for _ in range(a.runs)]
    print(
        json.dumps(
            {
                "runs": runs,
                "worst_wall_ms": max(r["wall_ms"] for r in runs),
                "worst_cpu_ms": max(r["cpu_ms"] for r in runs),
                "callbacks_over_100ms": sum(r["over_100ms"] for r in runs),
                "load_average": os.getloadavg(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

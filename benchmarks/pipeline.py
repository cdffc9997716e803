"""Self-Instruct end to end: the CLI's ``generate`` against a local OpenAI-format server
(benchmarks/_server.py --selfinstruct, asyncio, its own process) answering with plausible
numbered instruction lists, classifications and instances.

    python benchmarks/pipeline.py                 # -n 1000 --num-instructions 2000 at 200 ms
    python benchmarks/pipeline.py --rpm 3000      # with an RPM cap (bound: 50/s)
    python benchmarks/pipeline.py --simulate      # a real model's latencies, 100x faster
    python benchmarks/pipeline.py --code /path/to/other/checkout   # compare another version

Requests/s is measured by the server (answers / time from the first arrival to the last
answer) and compared with the bound ``min(concurrency / latency, rpm / 60)``. ``--simulate``
answers bootstrap requests in 12 s, classifications in 1 s and instances in 6 s, all divided
by ``--scale``, and projects the hours for ``--project`` instructions from the measured run
(the run's time scales with the number of instructions: rounds for the round-by-round
bootstrap, the gate for the window). Without ``--simulate`` the same number of requests is then
sent straight through a ``Dispatcher`` against a fresh server (the pipeline's ceiling under
the same machine load) and the ratio is reported. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SEED = ROOT.parent / "shared" / "data" / "seed_tasks.jsonl"
REAL_LATENCY = {"bootstrap": 12.0, "classify": 1.0, "instances": 6.0}


def start_server(latency: float, per_kind: dict[str, float]) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, str(HERE / "_server.py"), str(latency), "--selfinstruct"]
    for kind, seconds in per_kind.items():
        cmd += [f"--latency-{kind}", str(seconds)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/v1"


def stop_server(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    stats: dict[str, Any] = json.loads(proc.stdout.readline())
    proc.wait(10)
    return stats


def code_env(code: Path | None) -> dict[str, str]:
    env = {**os.environ, "OPENAI_API_KEY": "bench"}
    if code is not None:
        parts = [code / "core", code / "plugins"]
        env["PYTHONPATH"] = os.pathsep.join(
            [*(str(p) for p in parts), *filter(None, [env.get("PYTHONPATH", "")])]
        )
    return env


def run_generate(a: argparse.Namespace, per_kind: dict[str, float]) -> dict[str, Any]:
    proc, url = start_server(a.latency, per_kind)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out"
            cmd = [
                sys.executable,
                "-m",
                "instructgen",
                "generate",
                str(a.tasks),
                "--engine",
                "openai",
                "-n",
                str(a.n),
                "--num-instructions",
                str(a.num_instructions),
                "--concurrency",
                str(a.concurrency),
                "--base-url",
                url,
                "--out",
                str(out),
                "--json",
            ]
            if a.rpm:
                cmd += ["--rpm", str(a.rpm)]
            if a.no_cache:
                cmd += ["--no-cache"]
            if a.window is not None:
                cmd += ["--window", str(a.window)]
            started = time.perf_counter()
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            done = subprocess.run(
                cmd, env=code_env(a.code), capture_output=True, text=True, timeout=3600
            )
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            if done.returncode != 0:
                raise SystemExit(f"generate failed ({done.returncode}): {done.stderr[-2000:]}")
            summary = json.loads(done.stdout)
            run = json.loads((out / "run.json").read_text())
    finally:
        server = stop_server(proc)
    return {
        "command": " ".join(["instructgen", *cmd[3:]]).replace(url, "URL").replace(str(out), "OUT"),
        "wall_s": round(wall, 3),
        "client_cpu_s": round(cpu, 2),
        "examples": summary["examples"],
        "instructions": run["instructions_generated"],
        "bootstrap_requests": run["bootstrap_requests"],
        "bootstrap_requests_unused": run.get("bootstrap_requests_unused"),
        "timings": run["timings"],
        "server": server,
    }


def dispatcher_alone(a: argparse.Namespace, requests: int) -> dict[str, Any]:
    """The same number of requests straight through a ``Dispatcher`` (benchmarks/throughput.py)
    against a fresh server, right after the pipeline run: the same machine load, no pipeline."""
    import asyncio

    sys.path.insert(0, str(HERE))
    from throughput import run
    from throughput import start_server as start_plain

    from instructgen.dispatch import DispatchConfig

    proc, url = start_plain(a.latency)
    try:
        config = DispatchConfig(concurrency=a.concurrency, rpm=a.rpm)
        result = asyncio.run(run(url, requests, config, "alone"))
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)
    return {"requests": requests, "per_second": result["per_second"]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", type=Path, default=SEED)
    p.add_argument("-n", type=int, default=1000)
    p.add_argument("--num-instructions", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--rpm", type=float, default=None)
    p.add_argument("--window", type=int, default=None, help="default: the CLI's")
    p.add_argument("--no-cache", action="store_true", help="pass --no-cache (default: cached)")
    p.add_argument("--code", type=Path, default=None, help="run this checkout's instructgen")
    p.add_argument("--simulate", action="store_true", help="a real model's per-stage latencies")
    p.add_argument("--scale", type=float, default=100.0)
    p.add_argument("--project", type=int, default=52000, help="instructions to project to")
    p.add_argument(
        "--no-baseline", action="store_true", help="skip the dispatcher-alone run after it"
    )
    a = p.parse_args()
    per_kind = {k: v / a.scale for k, v in REAL_LATENCY.items()} if a.simulate else {}
    result = run_generate(a, per_kind)
    server = result["server"]
    out: dict[str, Any] = {"cpus": os.cpu_count(), "code": str(a.code or ROOT), **result}
    if a.simulate:
        seconds = server["span_s"] * a.scale  # real time of the measured run
        out["simulation"] = {
            "latencies_s": REAL_LATENCY,
            "scale": a.scale,
            "measured_span_s": server["span_s"],
            "real_hours_for_run": round(seconds / 3600, 3),
            "projected_instructions": a.project,
            "projected_hours": round(seconds * a.project / a.num_instructions / 3600, 2),
            "projected_bootstrap_requests": round(
                result["bootstrap_requests"] * a.project / a.num_instructions
            ),
        }
    else:
        bound = a.concurrency / a.latency
        if a.rpm:
            bound = min(bound, a.rpm / 60)
        out["bound_per_second"] = bound
        out["fraction_of_bound"] = round(server["per_second"] / bound, 3)
        if not a.no_baseline:
            alone = dispatcher_alone(a, server["requests"])
            out["dispatcher_alone"] = {
                **alone,
                "fraction_of_bound": round(alone["per_second"] / bound, 3),
            }
            out["pipeline_vs_dispatcher_alone"] = round(
                server["per_second"] / alone["per_second"], 3
            )
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

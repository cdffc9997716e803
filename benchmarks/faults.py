"""Self-Instruct end to end against an unreliable provider: the CLI's ``generate`` against
``benchmarks/_server.py --selfinstruct`` injecting 20 % 429, 5 % 500, 2 % connection resets,
2 % malformed JSON, 2 % replies cut by length and 1 % requests held 30 s then dropped, each run
with fresh faults (``--seed`` = the run's number) and a fresh ``--out``; then once against the
same server without faults (the clean time).

    python benchmarks/faults.py                     # 10 runs, -n 300 --num-instructions 600
    python benchmarks/faults.py --runs 3 --latency 0.5
    python benchmarks/faults.py --runs 3 --timeout 10   # give up on held requests sooner
    python benchmarks/faults.py --runs 3 --hedge-after off   # no copies of late requests

A run "finished in one go" when it exits 0 with all ``-n`` examples and printed no traceback.
Prints JSON: each run's exit code, wall time, examples, faults injected, copies of late
requests sent (``hedges_sent``) and the last line of stderr; the count finished in one go;
the clean run's wall time and the worst/median ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SEED = HERE.parents[1] / "shared" / "data" / "seed_tasks.jsonl"
FAULTS = {
    "429": 0.20,
    "500": 0.05,
    "reset": 0.02,
    "malformed": 0.02,
    "length": 0.02,
    "timeout": 0.01,
}


def start_server(a: argparse.Namespace, seed: int, faults: bool) -> tuple[Any, str]:
    cmd = [sys.executable, str(HERE / "_server.py"), str(a.latency), "--selfinstruct"]
    cmd += ["--seed", str(seed), "--timeout-seconds", str(a.timeout_seconds)]
    if a.log_dir:
        cmd += ["--log", str(Path(a.log_dir) / f"requests-{seed}.jsonl")]
    if faults:
        for kind, share in FAULTS.items():
            cmd += [f"--fault-{kind}", str(share)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/v1"


def stop_server(proc: Any) -> dict[str, Any]:
    proc.stdin.close()
    line = proc.stdout.readline()
    proc.wait(10)
    stats: dict[str, Any] = json.loads(line) if line else {}
    return stats


def one_run(a: argparse.Namespace, seed: int, faults: bool) -> dict[str, Any]:
    proc, url = start_server(a, seed, faults)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [
                *(sys.executable, "-m", "instructgen", "generate", str(a.tasks)),
                *("--engine", "openai", "--base-url", url, "--out", str(Path(tmp) / "out")),
                *("-n", str(a.n), "--num-instructions", str(a.num_instructions)),
                *("--concurrency", str(a.concurrency), "--json"),
            ]
            if a.timeout is not None:
                cmd += ["--timeout", str(a.timeout)]
            if a.hedge_after is not None:
                cmd += ["--hedge-after", a.hedge_after]
            env = {**os.environ, "OPENAI_API_KEY": "sk-bench"}
            started = time.perf_counter()
            try:
                done = subprocess.run(
                    cmd, env=env, capture_output=True, text=True, timeout=a.run_timeout
                )
                code, out, err = done.returncode, done.stdout, done.stderr
            except subprocess.TimeoutExpired as exc:
                code, out, err = None, "", str(exc)
            wall = time.perf_counter() - started
            report = Path(tmp) / "out" / "run.json"
            requests = json.loads(report.read_text())["requests"] if report.exists() else {}
    finally:
        server = stop_server(proc)
    examples = error = None
    try:
        summary = json.loads(out) if out else {}
    except json.JSONDecodeError:
        summary = {}
    if code == 0:
        examples = summary.get("examples")
    else:
        error = summary.get("message")
    lines = err.strip().splitlines()
    return {
        "seed": seed,
        "exit": code,
        "wall_s": round(wall, 2),
        "examples": examples,
        "one_go": code == 0 and examples == a.n and "Traceback" not in err,
        "traceback": "Traceback" in err,
        "faults": server.get("faults", {}),
        "requests_answered": server.get("requests"),
        "hedges_sent": requests.get("hedges_sent"),
        "hedges_answered_first": requests.get("hedges_answered_first"),
        "retries": requests.get("retries"),
        "error": error,
        "stderr_last": lines[-1][:300] if lines else "",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--latency", type=float, default=0.2, help="seconds per answer")
    p.add_argument("--timeout-seconds", type=float, default=30.0, help="a held request's time")
    p.add_argument("-n", type=int, default=300)
    p.add_argument("--num-instructions", type=int, default=600)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--tasks", default=str(SEED))
    p.add_argument("--timeout", type=float, default=None, help="generate's --timeout")
    p.add_argument("--hedge-after", default=None, help="generate's --hedge-after (auto, off, s)")
    p.add_argument("--run-timeout", type=float, default=1200.0)
    p.add_argument("--log-dir", default=None, help="the server's log of each run's requests")
    a = p.parse_args()
    clean = one_run(a, 0, faults=False)
    runs = []
    for i in range(1, a.runs + 1):
        runs.append(one_run(a, i, faults=True))
        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    walls = [r["wall_s"] for r in runs]
    print(
        json.dumps(
            {
                "command": f"instructgen generate seed_tasks.jsonl -n {a.n} --num-instructions "
                f"{a.num_instructions} --concurrency {a.concurrency}"
                + (f" --timeout {a.timeout:g}" if a.timeout is not None else "")
                + (f" --hedge-after {a.hedge_after}" if a.hedge_after is not None else ""),
                "latency_s": a.latency,
                "faults": FAULTS,
                "timeout_seconds": a.timeout_seconds,
                "clean": clean,
                "runs": len(runs),
                "finished_in_one_go": sum(r["one_go"] for r in runs),
                "tracebacks": sum(r["traceback"] for r in runs),
                "wall_s": {
                    "clean": clean["wall_s"],
                    "median": round(statistics.median(walls), 2),
                    "max": max(walls),
                },
                "ratio_to_clean": {
                    "median": round(statistics.median(walls) / clean["wall_s"], 2),
                    "max": round(max(walls) / clean["wall_s"], 2),
                },
                "load_average": os.getloadavg(),
                "each": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""List prompts under a requests-per-minute limit: Self-Instruct with ``--engine
openai-completions`` against a local OpenAI-format server (benchmarks/_server.py
--selfinstruct --rpm, asyncio, its own process) that allows ``--server-rpm`` requests a minute
and answers the rest 429 with ``retry-after-ms``.

    python benchmarks/list_prompts.py [-n 500] [--num-instructions 500] [--server-rpm 600]
                                      [--latency 0.2] [--before /path/to/checkout]

Runs, each against a fresh server (its own limit) and a fresh output folder:

- ``one_prompt_a_request``: this code with ``--prompts-per-request 1``;
- ``before`` (with ``--before PATH``): that checkout's instructgen (e.g. the code before list
  prompts), the same command without the flag;
- ``lists``: this code with the default ``--prompts-per-request`` (20);
- ``rerun_one_prompt_a_request``: the ``lists`` command again with ``--prompts-per-request 1``
  in the same folder and against the same server: what the server saw (it must be nothing).

Rows per minute = examples in the dataset / the command's wall time. Prints JSON: per run the
rows, wall time, rows per minute, requests and prompts the server answered and refused (429),
run.json's ``requests_sent`` / ``prompts_sent``; and the ratios of the rates.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SEED = ROOT.parent / "shared" / "data" / "seed_tasks.jsonl"


class Server:
    def __init__(self, latency: float, rpm: int) -> None:
        cmd = [sys.executable, str(HERE / "_server.py"), str(latency), "--selfinstruct"]
        cmd += ["--rpm", str(rpm)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=10) as r:
            data: dict[str, Any] = json.loads(r.read())
        return data

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.stdout.read()
        self.proc.wait(10)


def env_for(code: Path) -> dict[str, str]:
    env = {**os.environ, "OPENAI_API_KEY": "bench"}
    env["PYTHONPATH"] = os.pathsep.join([str(code / "core"), str(code / "plugins")])
    return env


def generate(
    a: argparse.Namespace, server: Server, out: Path, code: Path, *extra: str
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "instructgen",
        "generate",
        str(a.tasks),
        "--engine",
        "openai-completions",
        "-n",
        str(a.n),
        "--num-instructions",
        str(a.num_instructions),
        "--base-url",
        server.url,
        "--out",
        str(out),
        "--json",
        *extra,
    ]
    before = server.stats()
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env_for(code), capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"generate failed ({done.returncode}): {done.stderr[-2000:]}")
    after = server.stats()
    summary = json.loads(done.stdout)
    report = json.loads((out / "run.json").read_text())
    requests = report["requests"]
    rows = int(summary["examples"])
    return {
        "command": " ".join(["instructgen", *cmd[3:]])
        .replace(server.url, "URL")
        .replace(str(out), "OUT")
        .replace(str(a.tasks), a.tasks.name),
        "rows": rows,
        "wall_s": round(wall, 2),
        "rows_per_minute": round(rows / wall * 60, 1),
        "server_requests_answered": after["requests"] - before["requests"],
        "server_prompts_answered": after["prompts"] - before["prompts"],
        "server_refused_429": after["refused_429"] - before["refused_429"],
        "requests_sent": requests.get("requests_sent"),
        "prompts_sent": requests.get("prompts_sent"),
        "requests_cached": requests.get("requests_cached"),
    }


def measured(a: argparse.Namespace, code: Path, *extra: str) -> dict[str, Any]:
    server = Server(a.latency, a.server_rpm)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return generate(a, server, Path(tmp) / "out", code, *extra)
    finally:
        server.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", type=Path, default=SEED)
    p.add_argument("-n", type=int, default=500)
    p.add_argument("--num-instructions", type=int, default=500)
    p.add_argument("--server-rpm", type=int, default=600)
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--before", type=Path, default=None, help="a checkout to compare with")
    a = p.parse_args()
    out: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "server": {"rpm": a.server_rpm, "latency_s": a.latency},
    }
    out["one_prompt_a_request"] = measured(a, ROOT, "--prompts-per-request", "1")
    if a.before is not None:
        out["before"] = {"code": str(a.before), **measured(a, a.before)}
    server = Server(a.latency, a.server_rpm)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "out"
            out["lists"] = generate(a, server, folder, ROOT)
            out["rerun_one_prompt_a_request"] = generate(
                a, server, folder, ROOT, "--prompts-per-request", "1"
            )
    finally:
        server.close()
    rate = out["lists"]["rows_per_minute"]
    out["ratio_vs_one_prompt_a_request"] = round(
        rate / out["one_prompt_a_request"]["rows_per_minute"], 2
    )
    if "before" in out:
        out["ratio_vs_before"] = round(rate / out["before"]["rows_per_minute"], 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

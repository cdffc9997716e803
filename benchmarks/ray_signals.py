"""How fast a Ray directory run stops: a wrong ``--ray-address`` (seconds to exit 2) and SIGTERM
at two moments of a run (while Ray starts, while requests are in flight: seconds from the
signal to exit 143). Against the tests' wire server, which holds every request 30 s so that
requests are in flight when the signal comes. Prints JSON.

    python benchmarks/ray_signals.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from proc_tree import descendants, end  # noqa: E402
from wire_server import WireServer  # noqa: E402


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _command(docs: Path, out: Path, server: WireServer, *extra: str) -> list[str]:
    return [
        *(sys.executable, "-m", "instructgen", "from-dir", str(docs), "--engine", "openai"),
        *("--base-url", server.openai_base_url, "--out", str(out), "--executor", "ray"),
        *("--executor-workers", "2", *extra),
    ]


def bad_address(work: Path, server: WireServer, address: str) -> float:
    started = time.monotonic()
    proc = subprocess.run(
        _command(
            work / "docs", work / f"out-bad-{time.monotonic_ns()}", server, "--ray-address", address
        ),
        env={**os.environ, "OPENAI_API_KEY": "sk-bench"},
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    return time.monotonic() - started


def sigterm(work: Path, server: WireServer, moment: str) -> float:
    proc = subprocess.Popen(
        _command(work / "docs", work / f"out-{time.monotonic_ns()}", server),
        env={**os.environ, "OPENAI_API_KEY": "sk-bench"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    watched: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 120
        calls = len(server.calls)
        while time.monotonic() < deadline:
            if moment == "starting" and any(
                b"gcs_server" in _cmdline(p) for p in descendants(proc.pid)
            ):
                break
            if moment == "requests in flight" and len(server.calls) > calls:
                break
            time.sleep(0.02)
        watched = descendants(proc.pid)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        took = time.monotonic() - sent
        assert proc.returncode == 143, proc.returncode
        return took
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        end(watched)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, WireServer() as server:
        work = Path(tmp)
        (work / "docs").mkdir()
        for i in range(6):
            (work / "docs" / f"note-{i}.txt").write_text(f"Note {i} on ferries. " * 200)
        server.latency = 30.0
        figures: dict[str, list[float]] = {}
        for _ in range(a.repeat):
            for address in ("HEAD:6379", "127.0.0.1:9"):
                figures.setdefault(f"bad address {address}: exit 2 after s", []).append(
                    bad_address(work, server, address)
                )
            for moment in ("starting", "requests in flight"):
                figures.setdefault(f"SIGTERM while {moment}: exit 143 after s", []).append(
                    sigterm(work, server, moment)
                )
    print(
        json.dumps(
            {
                k: {"median": round(statistics.median(v), 2), "max": round(max(v), 2)}
                for k, v in figures.items()
            }
            | {"load_average": os.getloadavg()[0]},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""Peak memory of ``instructgen validate`` on a task file whose second line is huge.

    python benchmarks/tasks_memory.py [--size-mb 1024] [--sparse]

Writes a temporary task file (one good task, then one line of SIZE MB without a newline:
real text written in 8 MB blocks, or with ``--sparse`` a sparse file read back as NUL bytes),
runs ``instructgen validate`` on it and on a small valid file in child processes, and prints
JSON: each child's peak resident size (``ru_maxrss`` from wait4), the difference, wall time,
exit code and the message. The line is refused with its number either way; what this
measures is that it is never held in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MAIN = "import sys\nfrom instructgen.cli import main\nmain(sys.argv[1:])\n"
TASK = {"id": "t0", "instruction": "Say hello.", "instances": [{"input": "", "output": "Hi"}]}


def run(path: Path) -> dict[str, Any]:
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", MAIN, "validate", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    scale = 1 if sys.platform == "darwin" else 1024
    return {
        "exit": os.waitstatus_to_exitcode(status),
        "peak_rss_mb": round(usage.ru_maxrss * scale / 2**20, 1),
        "seconds": round(time.monotonic() - start, 2),
        "message": out.splitlines()[0][:160] if out else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--sparse", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tasks-memory-") as tmp:
        small = Path(tmp) / "small.jsonl"
        small.write_text(json.dumps(TASK) + "\n", encoding="utf-8")
        big = Path(tmp) / "tasks.jsonl"
        start = time.monotonic()
        with big.open("wb") as fh:
            fh.write((json.dumps(TASK) + "\n" + '{"id": "big", "instruction": "').encode())
            if args.sparse:
                fh.truncate(fh.tell() + args.size_mb * 2**20)
            else:
                block = b"x" * (8 * 2**20)
                for _ in range(args.size_mb // 8):
                    fh.write(block)
        written = time.monotonic() - start
        baseline, huge = run(small), run(big)
    print(
        json.dumps(
            {
                "line_mb": args.size_mb,
                "sparse": args.sparse,
                "write_seconds": round(written, 2),
                "baseline": baseline,
                "huge_line": huge,
                "peak_over_baseline_mb": round(huge["peak_rss_mb"] - baseline["peak_rss_mb"], 1),
                "load_average": os.getloadavg()[0],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""``instructgen extract`` on a large folder: how soon the first line of the listing appears,
how long the listing takes, and the largest process's memory (the command or one of its
extraction workers). The folder is made in a temporary directory: ``--files`` text files of
``--mb`` MB each (random words, spaces and line breaks).

    python benchmarks/extract_listing.py [--files 100] [--mb 10] [--workers 2]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = [
    "harbour",
    "ferry",
    "council",
    "budget",
    "lesson",
    "garden",
    "invoice",
    "museum",
    "bridge",
    "satellite",
    "orchestra",
    "volcano",
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "on",
    "with",
    "as",
    "by",
    "at",
    "from",
    "that",
    "this",
]


def make_folder(folder: Path, files: int, mb: int) -> int:
    rng = random.Random(1)
    total = 0
    for i in range(files):
        words = [rng.choice(WORDS) for _ in range(mb * 1_000_000 // 6)]
        for k in range(12, len(words), 12):
            words[k] += "\n"
        text = " ".join(words)
        (folder / f"doc-{i:04d}.txt").write_text(text, encoding="utf-8")
        total += len(text)
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--mb", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        size = make_folder(folder, a.files, a.mb)
        cmd = [sys.executable, "-m", "instructgen", "extract", str(folder)]
        cmd += ["--workers", str(a.workers)]
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        first = None
        lines = 0
        for line in proc.stdout:
            if first is None and line.startswith(("read", "skip")):
                first = time.monotonic() - started
            lines += 1
        proc.wait()
        total = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
    print(
        json.dumps(
            {
                "files": a.files,
                "characters": size,
                "exit": proc.returncode,
                "lines": lines,
                "first_line_s": None if first is None else round(first, 2),
                "total_s": round(total, 2),
                "largest_process_mb": peak,
            }
        )
    )


if __name__ == "__main__":
    main()

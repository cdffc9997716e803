"""Extraction of the whole corpus: instructgen vs ``unstructured.partition.auto.partition`` file
by file, in the same run. Prints JSON: files/s, coverage (files with non-empty text), and the
size of the installed environment (no torch).

    python benchmarks/extract.py [--corpus ../shared/corpus] [--workers 2]

unstructured runs with the same offline spaCy replacement instructgen uses (without it most of
its partitioners try to download a model and fail here); its defaults are otherwise untouched.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_instructgen(root: Path, workers: int) -> dict[str, object]:
    from instructgen.documents import scan

    start = time.perf_counter()
    result = scan(root, workers=workers)  # no cache: every file really read
    seconds = time.perf_counter() - start
    files = result.files
    return {
        "seconds": round(seconds, 2),
        "files": len(files),
        "with_text": sum(1 for f in files if f.text),
        "files_per_second": round(len(files) / seconds, 2),
        "read_by": sorted({f.extractor for f in files if f.extractor}),
    }


def run_unstructured(root: Path) -> dict[str, object]:
    from instructgen_unstructured.offline import ensure_offline

    ensure_offline()
    from unstructured.partition.auto import partition

    paths = sorted(p for p in root.rglob("*") if p.is_file())
    ok = 0
    failures: dict[str, int] = {}
    start = time.perf_counter()
    for p in paths:
        try:
            with (
                contextlib.redirect_stdout(io.StringIO()),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                elements = partition(filename=str(p))
            if any(str(e).strip() for e in elements):
                ok += 1
        except Exception as exc:
            failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
    seconds = time.perf_counter() - start
    return {
        "seconds": round(seconds, 2),
        "files": len(paths),
        "with_text": ok,
        "files_per_second": round(len(paths) / seconds, 2),
        "failures": failures,
    }


def venv_size() -> dict[str, object]:
    prefix = Path(sys.prefix)
    out = subprocess.run(["du", "-sm", str(prefix)], capture_output=True, text=True)
    mb = int(out.stdout.split()[0]) if out.returncode == 0 else None
    torch = (prefix / "lib").exists() and any(prefix.glob("lib/python*/site-packages/torch"))
    return {"path": str(prefix), "megabytes": mb, "torch_installed": torch}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--corpus", default=str(HERE.parents[1] / "shared" / "corpus"))
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "corpus"
        shutil.copytree(a.corpus, root, ignore=shutil.ignore_patterns("NOTICE.md"))
        ours = run_instructgen(root, a.workers)
        theirs = run_unstructured(root)
    print(
        json.dumps(
            {
                "cpus": os.cpu_count(),
                "instructgen": ours,
                "unstructured_partition_auto": theirs,
                "files_per_second_ratio": round(
                    float(ours["files_per_second"])  # type: ignore[arg-type]
                    / float(theirs["files_per_second"]),
                    2,
                ),  # type: ignore[arg-type]
                "coverage": {"instructgen": ours["with_text"], "unstructured": theirs["with_text"]},
                "environment": venv_size(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

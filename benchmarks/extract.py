"""Extraction of the whole corpus: instructgen vs ``unstructured.partition.auto.partition`` file
by file, in the same run. Prints JSON: files/s, coverage (files with non-empty text), the
largest worker process, and the size of the installed environment (no torch).

    python benchmarks/extract.py [--corpus ../shared/corpus] [--workers 2] [--install-size]

unstructured runs with the same offline spaCy replacement instructgen uses (without it most of
its partitioners try to download a model and fail here); its defaults are otherwise untouched.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_instructgen(root: Path, workers: int) -> dict[str, object]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from folder_reading import read_folder  # the streamed reader, collected

    start = time.perf_counter()
    result = read_folder(root, workers=workers)  # no cache: every file really read
    seconds = time.perf_counter() - start
    files = result.files
    by_ext: dict[str, float] = {}
    for f in files:
        ext = Path(f.rel).suffix.lower()
        by_ext[ext] = by_ext.get(ext, 0.0) + f.seconds
    return {
        "seconds": round(seconds, 2),
        "files": len(files),
        "with_text": sum(1 for f in files if f.text),
        "files_per_second": round(len(files) / seconds, 2),
        "read_by": sorted({f.extractor for f in files if f.extractor}),
        # the largest resident size any worker (or program a worker ran) reached: what the
        # per-file memory limit (--max-memory, default 4,096 MB) is measured against
        "peak_worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024,
        "per_file": {f.rel: (f.seconds, bool(f.text)) for f in files},
        # time in the workers by extension, costliest first (sums over both workers)
        "worker_seconds_by_extension": {
            ext: round(sec, 2) for ext, sec in sorted(by_ext.items(), key=lambda kv: -kv[1])
        },
    }


def run_unstructured(root: Path) -> dict[str, object]:
    from instructgen_unstructured.offline import ensure_offline

    ensure_offline()
    from unstructured.partition.auto import partition

    paths = sorted(p for p in root.rglob("*") if p.is_file())
    ok = 0
    failures: dict[str, int] = {}
    per_file: dict[str, tuple[float, bool]] = {}
    start = time.perf_counter()
    for p in paths:
        t0 = time.perf_counter()
        got = False
        try:
            with (
                contextlib.redirect_stdout(io.StringIO()),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                elements = partition(filename=str(p))
            got = any(str(e).strip() for e in elements)
            ok += got
        except Exception as exc:
            failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
        per_file[p.relative_to(root).as_posix()] = (time.perf_counter() - t0, got)
    seconds = time.perf_counter() - start
    return {
        "seconds": round(seconds, 2),
        "files": len(paths),
        "with_text": ok,
        "files_per_second": round(len(paths) / seconds, 2),
        "failures": failures,
        "per_file": per_file,
    }


def venv_size(prefix: Path) -> dict[str, object]:
    out = subprocess.run(["du", "-sm", str(prefix)], capture_output=True, text=True)
    mb = int(out.stdout.split()[0]) if out.returncode == 0 else None
    torch = any(prefix.glob("lib/python*/site-packages/torch"))
    return {"megabytes": mb, "torch_installed": torch}


def default_install_size(extras: str = "") -> dict[str, object]:
    """``pip install .`` (or ``.[extras]``) into a fresh virtualenv; its size on disk."""
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        target = str(HERE.parent) + (f"[{extras}]" if extras else "")
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", target],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return {"install": f"pip install '{Path(target).name}'", **venv_size(venv)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--corpus", default=str(HERE.parents[1] / "shared" / "corpus"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--install-size",
        action="store_true",
        help="also pip-install the project into fresh virtualenvs (default, and with [audio]) "
        "and report their sizes (a few minutes)",
    )
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "corpus"
        shutil.copytree(a.corpus, root, ignore=shutil.ignore_patterns("NOTICE.md"))
        ours = run_instructgen(root, a.workers)
        theirs = run_unstructured(root)
    ours_files: dict[str, tuple[float, bool]] = ours.pop("per_file")  # type: ignore[assignment]
    theirs_files: dict[str, tuple[float, bool]] = theirs.pop("per_file")  # type: ignore[assignment]
    both = [r for r in ours_files if ours_files[r][1] and theirs_files.get(r, (0.0, False))[1]]
    ours_both = sum(ours_files[r][0] for r in both)
    theirs_both = sum(theirs_files[r][0] for r in both)
    ours["files_both_read"] = {
        "files": len(both),
        "seconds": round(ours_both, 2),
        "files_per_second_one_process": round(len(both) / ours_both, 2),
    }
    theirs["files_both_read"] = {
        "files": len(both),
        "seconds": round(theirs_both, 2),
        "files_per_second_one_process": round(len(both) / theirs_both, 2),
    }
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
                "files_both_read_speed_ratio": round(theirs_both / max(ours_both, 1e-9), 2),
                "coverage": {"instructgen": ours["with_text"], "unstructured": theirs["with_text"]},
                "this_environment": {"path": sys.prefix, **venv_size(Path(sys.prefix))},
                "fresh_installs": (
                    [default_install_size(), default_install_size("audio")]
                    if a.install_size
                    else "not measured (--install-size)"
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""`instructgen extract` lists a folder as it reads it: in discovery order, keeping no text, so
its memory does not grow with the folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from instructgen.cli import cli

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import resource, sys
from instructgen.cli import main
try:
    main(["extract", sys.argv[1], "--workers", "2"])
except SystemExit as exc:
    code = exc.code
print("MAXRSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, code, file=sys.stderr)
"""


def _folder(folder: Path, files: int) -> None:
    """``files`` text files of about 1 MB each (the benchmark's folder maker)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from extract_listing import make_folder

    folder.mkdir(parents=True)
    make_folder(folder, files, 1)


def _peak_mb(folder: Path) -> tuple[int, list[str]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "core"), str(ROOT / "plugins")])}
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(folder)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    last = r.stderr.strip().splitlines()[-1].split()
    assert last[0] == "MAXRSS" and last[2] == "0", r.stderr[-2000:]
    return int(last[1]), r.stdout.splitlines()


@pytest.mark.slow
def test_memory_does_not_grow_with_the_folder(tmp_path: Path) -> None:
    _folder(tmp_path / "small", 20)
    _folder(tmp_path / "large", 100)
    small, small_lines = _peak_mb(tmp_path / "small")
    large, large_lines = _peak_mb(tmp_path / "large")
    assert len(small_lines) == 21 and len(large_lines) == 101
    # 80 MB more text; holding it (and its chunks) would add well over 160 MB
    assert large - small < 30, (small, large)


def test_the_listing_is_in_discovery_order_with_every_file(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    sizes = [3, 40, 1, 25, 7, 60, 2]  # read largest first, listed in name order
    for i, kb in enumerate(sizes):
        (docs / f"{i}.md").write_text("A line about ferries.\n" * (kb * 45))
    (docs / "empty.txt").write_text("")
    r = CliRunner().invoke(cli, ["extract", str(docs), "--workers", "2"])
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith(("read ", "skip "))]
    assert [ln.split()[1].rstrip(":") for ln in lines] == [
        *(f"{i}.md" for i in range(7)),
        "empty.txt",
    ]
    assert lines[-1].startswith("skip  empty.txt")
    d = json.loads(CliRunner().invoke(cli, ["extract", str(docs), "--json"]).output)
    assert [f["rel"] for f in d["files"]] == [*(f"{i}.md" for i in range(7)), "empty.txt"]
    assert d["summary"]["chunks"] == sum(f["chunks"] for f in d["files"]) > 7

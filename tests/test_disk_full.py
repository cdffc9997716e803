"""A full disk under --out: the run stops at the first failed write with one plain line and
exit 1, keeps every answer it received, a rerun on the still-full disk sends nothing, and once
space is freed the rerun pays only for what is not cached and makes the dataset an
uninterrupted run makes.

The disk is a 3 MB tmpfs, mounted for the test: it needs root (CI runs as root); elsewhere the
test is skipped."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import SHARED, TEST_KEY
from selfinstruct_responder import respond
from wire_server import WireServer, qa_responder

from instructgen import InstructionDataset

MAIN = "import sys\nfrom instructgen.cli import main\nmain(sys.argv[1:])\n"


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "3m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``folder`` (skips the test when it cannot be mounted)."""
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small disk needs root")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def grow(disk: Path, size: str) -> None:
    """Free space: the same disk, larger."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True)


def fill(path: Path) -> None:
    """Take every byte left on the disk of ``path`` (none may be left: then even creating the
    file fails, and the disk is as full as this would make it)."""
    with contextlib.suppress(OSError), path.open("wb") as fh:
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()


def cached_answers(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_API_KEY": TEST_KEY}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def assert_one_plain_line(r: subprocess.CompletedProcess[str], out: Path) -> str:
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert line.startswith("error: disk full: cannot write "), line
    assert str(out) in line and " free there" in line
    assert "resume with: instructgen " in line
    return line


def rows(ds: InstructionDataset) -> list[tuple[str, str, str]]:
    return [(r["instruction"], r["text"], r["target"]) for r in ds]


def fill_run_free_rerun(tmp_path: Path, command: list[str], responder: Any) -> None:
    """Run ``command`` (``--out`` appended) on a clean disk, then on a 3 MB disk until it is
    full, again on the full disk, and once more after space is freed; check what each did."""

    def cmd(server: WireServer, out: Path) -> list[str]:
        return [*command, "--base-url", server.openai_base_url, "--out", str(out)]

    with WireServer() as clean_server:
        clean_server.responder = responder
        done = run(cmd(clean_server, tmp_path / "clean"))
        assert done.returncode == 0, done.stderr
        clean = sum(clean_server.successes.values())

    with small_disk(tmp_path / "disk") as disk, WireServer() as server:
        server.responder = responder
        server.latency = 0.02  # answers in flight when the disk fills up
        out = disk / "out"
        first = run(cmd(server, out))
        line = assert_one_plain_line(first, out)
        paid = sum(server.successes.values())
        assert 0 < paid < clean
        # nothing received is lost: every answer paid for is in the cache
        assert cached_answers(out / "cache.sqlite3") == paid, line
        assert "every answer received is kept in the cache" in line

        # the run's end gave back what SQLite's log held; something else takes that space:
        # the rerun finds no room for the answers it would have in flight and sends nothing
        fill(disk / "filler")
        again = run(cmd(server, out))
        assert "kept free to store the answers in flight" in assert_one_plain_line(again, out)
        as_json = run([*cmd(server, out), "--json"])
        assert as_json.returncode == 1 and "Traceback" not in as_json.stderr
        payload = json.loads(as_json.stdout)
        assert payload["error"] == "DiskFullError" and payload["answers_unsaved"] == 0
        assert payload["path"] == str(out / "cache.sqlite3") and payload["free_bytes"] < 1 << 20
        assert payload["resume"].startswith("instructgen ")
        assert sum(server.successes.values()) == paid

        (disk / "filler").unlink(missing_ok=True)
        grow(disk, "64m")
        server.latency = 0
        resumed = run(cmd(server, out))
        assert resumed.returncode == 0, resumed.stderr
        # the rerun paid exactly for what was not cached: nothing twice
        assert server.paid_twice() == []
        assert sum(server.successes.values()) - paid == clean - paid
        assert rows(InstructionDataset.load(out)) == rows(
            InstructionDataset.load(tmp_path / "clean")
        )
        assert not list(out.glob("*.reserve"))


def test_generate_on_a_full_disk_stops_cleanly_and_pays_nothing_twice(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    command = [
        *(sys.executable, "-c", MAIN, "generate", str(tasks), "--engine", "openai"),
        *("-n", "800", "--num-instructions", "800", "--concurrency", "16"),
    ]
    fill_run_free_rerun(tmp_path, command, respond)


def test_from_dir_on_a_full_disk_stops_cleanly_and_pays_nothing_twice(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for pattern in ("*.txt", "*.html", "*.csv"):
        for f in (SHARED / "corpus").glob(pattern):
            shutil.copy(f, docs / f.name)
    command = [
        *(sys.executable, "-c", MAIN, "from-dir", str(docs), "--engine", "openai"),
        *("--chunk-size", "200", "--concurrency", "16"),
    ]
    fill_run_free_rerun(tmp_path, command, qa_responder("json"))


LIMITED = """
import json, resource, signal, sys
from pathlib import Path
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
from instructgen.atomic import write_json_atomic
from instructgen.documents.stream import RowSpill
from instructgen.errors import DiskFullError
folder = Path(sys.argv[1])
report = {}
spill = RowSpill(folder / "rows.jsonl")
try:
    for i in range(10_000):
        spill.add((0, i), [{"instruction": f"q{i}", "target": "a" * 500}])
except DiskFullError as exc:
    report["spill"] = str(exc)
report["stored"] = len(spill)
report["read_back"] = [r["instruction"] for r in spill]
spill.close()
(folder / "run.json").write_text("{}")
try:
    write_json_atomic(folder / "run.json", {"rows": ["x" * 1000] * 100})
except DiskFullError as exc:
    report["atomic"] = str(exc)
print(json.dumps(report))
"""


def test_writers_report_a_full_disk_and_keep_what_they_wrote_whole(tmp_path: Path) -> None:
    """No root needed: a file-size limit (``ulimit -f``) fails writes as a full disk does."""
    r = subprocess.run(
        [sys.executable, "-c", LIMITED, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    rows_file = tmp_path / "rows.jsonl"
    assert report["spill"].startswith(f"disk full: cannot write the dataset's rows {rows_file} (")
    # the chunk that did not fit left nothing behind: every row stored reads back whole
    assert 0 < report["stored"] < 10_000
    assert report["read_back"] == [f"q{i}" for i in range(report["stored"])]
    line = len(json.dumps({"instruction": "q", "target": "a" * 500}) + "\n")
    sizes = sum(line + len(str(i)) for i in range(report["stored"]))
    assert rows_file.stat().st_size == sizes
    # run.json: the old one stays whole, no half-written file beside it
    assert "cannot write the file" in report["atomic"]
    assert (tmp_path / "run.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl", "run.json"]


class Listener:
    def __init__(self) -> None:
        self.halted: list[object] = []

    def halt(self, error: object) -> None:
        self.halted.append(error)


def test_a_full_disk_halts_the_runs_and_frees_the_reserves_on_that_disk_only(
    tmp_path: Path,
) -> None:
    import errno

    from instructgen.diskspace import Reserve, device, disk_full, on_disk_full

    other_disk = Path("/dev/shm")
    if not other_disk.is_dir() or device(other_disk) == device(tmp_path):
        pytest.skip("needs /dev/shm on a disk of its own")
    here = Reserve(tmp_path / "cache.sqlite3.reserve", 65536, what="the cache").take()
    there_path = other_disk / f"instructgen-test-{os.getpid()}.reserve"
    there = Reserve(there_path, 65536, what="the cache").take()
    try:
        assert here.path.stat().st_size == there_path.stat().st_size == 65536
        run_here, run_there, run_anywhere = Listener(), Listener(), Listener()
        on_disk_full(run_here, tmp_path / "cache.sqlite3")
        on_disk_full(run_there, there_path)
        on_disk_full(run_anywhere)  # a run without a cache: any full disk stops it
        error = disk_full("the file", tmp_path / "run.json", OSError(errno.ENOSPC, "full"))
        assert "no space left on device" in str(error)
        assert not here.path.exists() and there_path.exists()
        assert run_here.halted == [error] == run_anywhere.halted and run_there.halted == []
    finally:
        there.release()
    assert not there_path.exists()

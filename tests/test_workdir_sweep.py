"""A streamed run's working folder (OUT/.rows-*) left by a run that was killed is removed by
the next run; a live run's, or a folder holding anything else, is left alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from proc_tree import descendants, end, survivors

from instructgen.outdir import make_workdir, remove_workdir, sweep_workdirs

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fcntl locks")

HOLD = """
import sys, time
from pathlib import Path
from instructgen.outdir import make_workdir
folder = make_workdir(Path(sys.argv[1]))
(folder / "rows.jsonl").write_text('{"instruction": "q"}\\n')
print(folder, flush=True)
time.sleep(60)
"""


def _holder(out: Path) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


def test_a_killed_runs_folder_goes_a_live_ones_stays(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    proc, folder = _holder(out)
    try:
        assert folder.parent == out and folder.name.startswith(".rows-")
        assert sweep_workdirs(out) == []  # its run is alive
        assert (folder / "rows.jsonl").exists()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert sweep_workdirs(out) == [folder]
    assert not folder.exists()


def test_this_processs_own_folder_stays(tmp_path: Path) -> None:
    folder = make_workdir(tmp_path)
    (folder / "rows.arrow").write_bytes(b"x")
    assert sweep_workdirs(tmp_path) == []
    assert folder.exists()
    remove_workdir(folder)
    assert not folder.exists()


def test_a_folder_with_other_files_is_not_ours(tmp_path: Path) -> None:
    proc, folder = _holder(tmp_path)
    (folder / "notes.txt").write_text("mine")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert sweep_workdirs(tmp_path) == []
    assert (folder / "notes.txt").read_text() == "mine"


def test_the_next_run_removes_what_a_killed_run_left(tmp_path: Path) -> None:
    """End to end: a from-dir run killed while streaming leaves OUT/.rows-*; the rerun (all
    from the cache) removes it and writes the dataset."""
    from wire_server import WireServer, qa_responder

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(60):
        (docs / f"note-{i:02d}.txt").write_text(f"Note {i} about the harbour. " * 80)
    out = tmp_path / "out"
    env = {**os.environ, "OPENAI_API_KEY": "sk-test"}
    with WireServer() as server:
        server.latency = 0.2
        server.responder = qa_responder("json")
        cmd = [sys.executable, "-m", "instructgen", "from-dir", str(docs), "--engine", "openai"]
        cmd += ["--base-url", server.openai_base_url, "--out", str(out), "--concurrency", "2"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        watched: dict[int, str] = {}
        try:
            deadline = time.monotonic() + 60
            while len(server.calls) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            watched = descendants(proc.pid)  # its extraction workers, if still reading
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            left = survivors(watched, within=5.0)
            end(watched)  # whatever happens, no worker outlives the test
        assert not left, f"workers outlived the killed run: {sorted(left)}"
        left_dirs = [p for p in out.iterdir() if p.name.startswith(".rows-")]
        assert left_dirs, "the killed run should have left its working folder"
        server.latency = 0.0
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    assert not [p for p in out.iterdir() if p.name.startswith(".rows-")]
    assert (out / "data").is_dir()

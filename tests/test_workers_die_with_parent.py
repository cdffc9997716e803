"""kill -9 of a directory run while its workers read: the workers, and the programs they
started, end with it instead of running on with parent 1 (PR_SET_PDEATHSIG on Linux, a
parent-liveness check everywhere)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import TEST_KEY
from proc_tree import HAS_PROC, descendants, end, survivors
from wire_server import WireServer

pytestmark = pytest.mark.skipif(not HAS_PROC, reason="Linux /proc")

# A slow extractor: one file sleeps in Python, the other waits on a program it started (as
# the OCR and .doc readers wait on tesseract and catdoc). Each records the pids to watch.
SCRIPT = textwrap.dedent(
    """
    import os, subprocess, sys, time
    from pathlib import Path

    from instructgen import Extracted, Extractor, hookimpl, register_plugin
    from instructgen.cli import main

    class Stall(Extractor):
        name = "stall-test"
        extensions = ("stall",)

        def extract(self, path):
            pids = Path(os.environ["STALL_PIDS"])
            if "child" in path.name:
                proc = subprocess.Popen(["sleep", "120"])
                with pids.open("a") as fh:
                    fh.write(f"{os.getpid()} {proc.pid}\\n")
                proc.wait()
            else:
                with pids.open("a") as fh:
                    fh.write(f"{os.getpid()}\\n")
                time.sleep(120)
            return Extracted(path.read_text())

    class StallPlugin:
        @hookimpl
        def register_extractors(self, registry):
            registry.add(Stall)

    if __name__ == "__main__":
        register_plugin(StallPlugin(), name="stall-plugin")
        main(sys.argv[1:])
    """
)


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_kill_9_during_extraction_leaves_no_worker(tmp_path: Path, method: str) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a-sleep.stall").write_text("A slow file. " * 40)
    (docs / "b-child.stall").write_text("A slow file with a helper program. " * 40)
    for i in range(4):
        (docs / f"note-{i}.txt").write_text(f"Note {i} about lighthouses and ferries. " * 40)
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    pids_file = tmp_path / "pids"
    env = {
        **os.environ,
        "OPENAI_API_KEY": TEST_KEY,
        "STALL_PIDS": str(pids_file),
        "INSTRUCTGEN_WORKER_START": method,
    }
    with WireServer() as server:
        cmd = [
            *(sys.executable, str(script), "from-dir", str(docs), "--engine", "openai"),
            *("--base-url", server.openai_base_url, "--out", str(tmp_path / "out")),
            *("--workers", "2", "--no-cache"),
        ]
        err = tmp_path / "stderr"
        with err.open("wb") as fh:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=fh)
        recorded: list[str] = []
        watched: dict[int, str] = {}
        left: set[int] = set()
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                recorded = pids_file.read_text().split() if pids_file.exists() else []
                if len(recorded) == 3:  # both workers busy, one program started
                    break
                time.sleep(0.05)
            assert len(recorded) == 3, f"the slow files were never read: {err.read_text()}"
            watched = descendants(proc.pid)
            assert {int(p) for p in recorded} <= set(watched), (recorded, watched)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            left = survivors(watched, within=5.0)
        finally:
            if proc.poll() is None:
                watched = watched or descendants(proc.pid)
                proc.kill()
                proc.wait()
            end(watched)  # whatever happens, nothing is left running
    assert not left, f"outlived the run by 5 s: {sorted(left)} of {sorted(watched)}"

"""Ctrl-C while a worker reads a slow file: a streamed directory run stops at once and kills
that worker, instead of waiting for the file (minutes for an OCR or a transcription) or
leaving the worker running after the command has exited."""

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
from wire_server import WireServer

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path

    from instructgen import Extracted, Extractor, hookimpl, register_plugin
    from instructgen.cli import main

    class Stall(Extractor):
        name = "stall-test"
        extensions = ("stall",)

        def extract(self, path):
            Path(os.environ["STALL_PID"]).write_text(str(os.getpid()))
            time.sleep(120)
            return Extracted(path.read_text())

    class StallPlugin:
        @hookimpl
        def register_extractors(self, registry):
            registry.add(Stall)

    register_plugin(StallPlugin(), name="stall-plugin")
    main(sys.argv[1:])
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) is not running
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def test_ctrl_c_while_a_file_is_read_stops_at_once(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(4):
        (docs / f"note-{i}.txt").write_text(f"Note {i} about lighthouses and ferries. " * 40)
    (docs / "scan.stall").write_text("A slow file. " * 40)
    pid_file = tmp_path / "stall.pid"
    env = {**os.environ, "OPENAI_API_KEY": TEST_KEY, "STALL_PID": str(pid_file)}
    with WireServer() as server:
        cmd = [
            *(sys.executable, "-c", SCRIPT, "from-dir", str(docs), "--engine", "openai"),
            *("--base-url", server.openai_base_url, "--out", str(tmp_path / "out")),
            *("--workers", "2"),
        ]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pid_file.exists(), "the slow file was never read"
        time.sleep(0.5)
        worker = int(pid_file.read_text())
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        took = time.monotonic() - start
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    assert took < 4, took  # not the 5 s the run used to wait, nor the 120 s the file takes
    gone = time.monotonic() + 5
    while _alive(worker) and time.monotonic() < gone:
        time.sleep(0.05)
    alive = _alive(worker)
    if alive:
        os.kill(worker, signal.SIGKILL)
    assert not alive, "the worker reading the slow file outlived the run"

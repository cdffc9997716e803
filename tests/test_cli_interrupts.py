"""Ctrl-C and --max-cost stop a run cleanly: a clear message, the documented exit code, a
consistent cache, and a rerun that finishes without paying twice for what was answered."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import SHARED, TEST_KEY
from selfinstruct_responder import respond
from wire_server import WireServer

from instructgen import InstructionDataset

MAIN = "import sys\nfrom instructgen.cli import main\nmain(sys.argv[1:])\n"


def generate_cmd(tasks: Path, server: WireServer, out: Path, *options: str) -> list[str]:
    """``instructgen generate`` on the wire server's OpenAI endpoint, in a subprocess."""
    return [
        *(sys.executable, "-c", MAIN, "generate", str(tasks)),
        *("--engine", "openai", "--base-url", server.openai_base_url, "--out", str(out)),
        *options,
    ]


def test_ctrl_c_stops_quickly_and_the_rerun_resumes(tmp_path: Path) -> None:
    tasks = tmp_path / "t.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    env = {**os.environ, "OPENAI_API_KEY": TEST_KEY}
    with WireServer() as server:
        server.responder = respond
        server.latency = 0.1
        cmd = generate_cmd(
            tasks,
            server,
            tmp_path / "out",
            "-n",
            "20",
            "--num-instructions",
            "20",
            "--concurrency",
            "4",
        )
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 60
        while sum(server.successes.values()) < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert time.monotonic() - start < 5  # stops quickly
        assert proc.returncode == 130
        assert "interrupted" in err and "rerun to resume" in err and "Traceback" not in err
        server.latency = 0
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert len(server.paid_twice()) <= 4  # at most the requests in flight at Ctrl-C
    assert len(InstructionDataset.load(tmp_path / "out")) == 20


def test_max_cost_exits_1_and_says_how_to_resume(tmp_path: Path) -> None:
    tasks = tmp_path / "t.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    env = {**os.environ, "OPENAI_API_KEY": TEST_KEY}
    with WireServer() as server:
        server.responder = respond
        args = generate_cmd(tasks, server, tmp_path / "out", "-n", "10", "--json")
        r = subprocess.run(
            [*args, "--max-cost", "0.0005"], env=env, capture_output=True, text=True, timeout=120
        )
        assert r.returncode == 1
        payload = json.loads(r.stdout)
        assert payload["error"] == "BudgetExceededError"
        assert "rerun the same command with a higher --max-cost" in payload["message"]
        assert not (tmp_path / "out" / "metadata.json").exists()
        paid = sum(server.successes.values())
        r = subprocess.run(
            [*args, "--max-cost", "5"], env=env, capture_output=True, text=True, timeout=120
        )
        assert r.returncode == 0, r.stderr
        assert server.paid_twice() == []
        assert sum(server.successes.values()) > paid

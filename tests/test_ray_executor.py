"""contrib/instructgen-ray: a directory run on a local Ray instance (2 workers) gives the same
dataset as the default executor, against the wire-format server with a real SDK."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SHARED
from proc_tree import HAS_PROC, descendants, end, survivors
from selfinstruct_responder import respond
from wire_server import WireServer, qa_responder

from instructgen import InstructionDataset
from instructgen.cli import cli

pytest.importorskip("instructgen_ray", reason="install contrib/instructgen-ray (make does)")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # ended meanwhile
        return b""


def _dataset_files(out: Path) -> dict[str, bytes]:
    """The saved dataset's files (``data/``: not run.json, metadata.json or the caches, which
    hold timings and paths; nor ``state.json``, whose fingerprint ``datasets`` draws anew at
    every save), by path."""
    files = {
        str(p.relative_to(out)): p.read_bytes()
        for p in (out / "data").rglob("*")
        if p.name != "state.json"
    }
    assert any(name.endswith(".arrow") for name in files), sorted(files)
    return files


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("ray") / "corpus"  # the whole corpus, all 25 formats
    shutil.copytree(SHARED / "corpus", dst, ignore=shutil.ignore_patterns("NOTICE.md"))
    return dst


def test_hook_ray_executor_is_registered() -> None:
    r = CliRunner().invoke(cli, ["plugins", "--json"])
    plugins = {p["name"]: p for p in json.loads(r.stdout)["plugins"]}
    assert plugins["ray"]["registers"] == {"executors": ["ray"]}
    assert plugins["ray"]["distribution"] == "instructgen-ray"


def test_ray_run_equals_local_run(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-ray-test")
    with WireServer() as server:
        server.responder = qa_responder("mixed", fallback=respond)  # follow-ups too
        common = [
            "from-dir",
            str(corpus),
            "--engine",
            "openai",
            "--base-url",
            server.openai_base_url,
            "--chunk-size",
            "3000",
            "--samples-per-chunk",
            "2",
            "--json",
        ]
        local = CliRunner().invoke(cli, [*common, "--out", str(tmp_path / "local")])
        assert local.exit_code == 0, local.stderr
        sent_local = len(server.calls)
        ray = CliRunner().invoke(
            cli,
            [
                *common,
                "--out",
                str(tmp_path / "ray"),
                "--executor",
                "ray",
                "--executor-workers",
                "2",
            ],
        )
        assert ray.exit_code == 0, ray.stderr
        assert len(server.calls) - sent_local == sent_local  # the same requests, once each
    if HAS_PROC:  # Ray was shut down by the run: its reaper has left, killing nothing
        reapers = [
            pid for pid in descendants(os.getpid()) if b"instructgen_ray/reaper.py" in _cmdline(pid)
        ]
        assert not reapers
    a = InstructionDataset.load(tmp_path / "local")
    b = InstructionDataset.load(tmp_path / "ray")
    assert len(a) > 100
    assert a.rows == b.rows
    run_a = json.loads((tmp_path / "local" / "run.json").read_text())
    run_b = json.loads((tmp_path / "ray" / "run.json").read_text())
    assert run_b["executor"] == "ray"
    assert run_a["skipped_files"] == run_b["skipped_files"]
    assert run_b["requests"]["requests_completed"] == run_a["requests"]["requests_completed"]
    assert run_b["question_answer_replies"] == run_a["question_answer_replies"]
    assert run_a["question_answer_replies"]["follow_up_requests"] > 0
    # the same dataset, byte for byte, and one response cache as a local run has
    assert _dataset_files(tmp_path / "ray") == _dataset_files(tmp_path / "local")
    assert (tmp_path / "ray" / "cache.sqlite3").is_file()
    assert not list((tmp_path / "ray").glob("cache-ray-*"))
    for p in (tmp_path / "ray").rglob("*"):
        if p.is_file():
            assert b"sk-ray-test" not in p.read_bytes(), p


@pytest.mark.skipif(not HAS_PROC, reason="Linux /proc")
def test_kill_9_of_a_ray_run_leaves_no_ray_process(tmp_path: Path) -> None:
    """Ray ends its GCS server, raylet and workers with a killed driver, but its two agents
    used to run on for 60 s; the executor's reaper ends them with the run."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(4):
        (docs / f"note-{i}.txt").write_text(f"Note {i} about lighthouses and ferries. " * 40)
    env = {**os.environ, "OPENAI_API_KEY": "sk-ray-test"}
    with WireServer() as server:
        server.latency = 30.0  # the run is busy generating when it is killed
        cmd = [
            *(sys.executable, "-m", "instructgen", "from-dir", str(docs), "--engine", "openai"),
            *("--base-url", server.openai_base_url, "--out", str(tmp_path / "out")),
            *("--executor", "ray", "--executor-workers", "2", "--no-cache"),
        ]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        watched: dict[int, str] = {}
        try:
            deadline = time.monotonic() + 120
            while not server.calls and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.1)
            assert server.calls, "the run never reached generation"
            time.sleep(1.0)  # the reaper has looked at the run's processes since Ray started
            watched = descendants(proc.pid)
            names = {_cmdline(pid)[:200] for pid in watched}
            assert any(b"raylet" in n for n in names), names
        finally:
            watched = watched or descendants(proc.pid)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            left = survivors(watched, within=5.0)
            end(watched)  # whatever happens, nothing is left running
        assert not left, f"outlived the run by 5 s: {sorted(left)} of {sorted(watched)}"

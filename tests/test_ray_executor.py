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


def _from_dir(docs: Path, out: Path, server: WireServer, *extra: str) -> list[str]:
    return [
        *(sys.executable, "-m", "instructgen", "from-dir", str(docs), "--engine", "openai"),
        *("--base-url", server.openai_base_url, "--out", str(out), "--executor", "ray"),
        *("--chunk-size", "3000", "--samples-per-chunk", "2", *extra),
    ]


@pytest.mark.parametrize("address", ["HEAD:6379", "127.0.0.1:9", "ray://127.0.0.1:9", "6379"])
def test_a_wrong_ray_address_exits_2_at_once_naming_it(tmp_path: Path, address: str) -> None:
    """An address nothing answers at (a placeholder, a closed port, no host at all) is refused
    in one line before anything is made, instead of Ray's minutes of reconnection attempts."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Lighthouses guide ships into the harbour at night. " * 20)
    env = {**os.environ, "OPENAI_API_KEY": "sk-ray-test"}
    with WireServer() as server:
        cmd = _from_dir(docs, tmp_path / "out", server, "--ray-address", address)
        started = time.monotonic()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        took = time.monotonic() - started
        assert not server.calls
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and address in lines[0] and "Traceback" not in proc.stderr, lines
    assert took < 60, took  # 15 s on an idle machine (5 s probe); the bound allows a busy one
    assert not (tmp_path / "out").exists()  # nothing made for a run that cannot start


@pytest.mark.skipif(not HAS_PROC, reason="Linux /proc")
@pytest.mark.parametrize("moment", ["while Ray starts", "while requests are in flight"])
def test_sigterm_stops_a_ray_run_at_once(tmp_path: Path, moment: str) -> None:
    """SIGTERM at any moment of a Ray run: exit 143 with the resume message, and nothing
    of the run (Ray's processes included) left running."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(6):
        (docs / f"note-{i}.txt").write_text(f"Note {i} about lighthouses and ferries. " * 40)
    env = {**os.environ, "OPENAI_API_KEY": "sk-ray-test"}
    with WireServer() as server:
        server.latency = 30.0  # requests stay in flight until the run is stopped
        cmd = _from_dir(docs, tmp_path / "out", server, "--executor-workers", "2")
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        watched: dict[int, str] = {}
        try:
            if moment == "while Ray starts":
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not any(
                    b"gcs_server" in _cmdline(p) for p in descendants(proc.pid)
                ):
                    time.sleep(0.05)
            else:
                deadline = time.monotonic() + 120
                while not server.calls and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert server.calls, "the run never reached generation"
            assert proc.poll() is None
            watched = descendants(proc.pid)
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            left = survivors(watched, within=10.0)
            end(watched)
    assert proc.returncode == 143, err.decode()
    assert "terminated" in err.decode() and "Traceback" not in err.decode()
    assert took < 15, took  # about a second on an idle machine (benchmarks/ray_signals.py)
    assert not left, f"outlived the run: {sorted(left)}"


@pytest.mark.slow
def test_a_two_node_cluster_gives_the_local_dataset_and_survives_losing_a_node(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two Ray nodes on this machine (a head and a worker node, as on a real cluster): a run
    through them gives the local executor's dataset byte for byte; a second run whose worker
    node is removed while files are being read still completes (Ray runs the lost tasks again
    on the head) with the same dataset."""
    from ray.cluster_utils import Cluster

    # the nodes read audio as the runs would: with the offline transcriber (a node's own
    # environment decides, and a cluster's nodes do not have the driver's)
    monkeypatch.setenv("INSTRUCTGEN_TRANSCRIBER", "local")
    env = {**os.environ, "OPENAI_API_KEY": "sk-ray-test"}
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    try:
        worker = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        with WireServer() as server:
            server.responder = qa_responder("mixed", fallback=respond)
            local = subprocess.run(
                [*_from_dir(corpus, tmp_path / "local", server), "--executor", "local"],
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert local.returncode == 0, local.stderr
            sent_local = len(server.calls)
            two = subprocess.run(
                _from_dir(corpus, tmp_path / "two", server, "--ray-address", cluster.address),
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert two.returncode == 0, two.stderr
            assert len(server.calls) == 2 * sent_local  # the same requests, once each
            # again, losing the worker node while files are being read
            before = len(server.calls)
            proc = subprocess.Popen(
                _from_dir(corpus, tmp_path / "lost", server, "--ray-address", cluster.address),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            try:
                deadline = time.monotonic() + 300
                while len(server.calls) == before and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert proc.poll() is None, "the run ended before the node could be lost"
                cluster.remove_node(worker)
                _, err = proc.communicate(timeout=600)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            assert proc.returncode == 0, err.decode()
    finally:
        cluster.shutdown()
    expected = _dataset_files(tmp_path / "local")
    assert _dataset_files(tmp_path / "two") == expected
    assert _dataset_files(tmp_path / "lost") == expected
    runs = [json.loads((tmp_path / d / "run.json").read_text()) for d in ("local", "two", "lost")]
    assert runs[1]["skipped_files"] == runs[2]["skipped_files"] == runs[0]["skipped_files"]

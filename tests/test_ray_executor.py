"""contrib/instructgen-ray: a directory run on a local Ray instance (2 workers) gives the same
dataset as the default executor, against the wire-format server with a real SDK."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SHARED
from selfinstruct_responder import respond
from wire_server import WireServer, qa_responder

from instructgen import InstructionDataset
from instructgen.cli import cli

pytest.importorskip("instructgen_ray", reason="install contrib/instructgen-ray (make does)")


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

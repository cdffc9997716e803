"""What the command line says matches what happened: the requests it sent, a dataset size it
can never reach refused up front, SIGTERM stopping a run as Ctrl-C does."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SHARED, TEST_KEY
from selfinstruct_responder import respond
from wire_server import WireServer

from instructgen import InstructionDataset
from instructgen.cli import cli

MAIN = "import sys\nfrom instructgen.cli import main\nmain(sys.argv[1:])\n"


def seed(tmp_path: Path) -> Path:
    tasks = tmp_path / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    return tasks


def generate(tasks: Path, server: WireServer, out: Path, *more: str) -> list[str]:
    return [
        *("generate", str(tasks), "--engine", "openai", "--base-url", server.openai_base_url),
        *("--out", str(out), *more),
    ]


def test_the_summary_counts_the_requests_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    tasks = seed(tmp_path)
    with WireServer() as server:
        server.responder = respond
        server.inject("500", times=4)
        out = tmp_path / "out"
        r = CliRunner().invoke(
            cli, generate(tasks, server, out, "-n", "3", "--num-instructions", "3")
        )
        assert r.exit_code == 0, r.output
        stats = json.loads((out / "run.json").read_text())["requests"]
        assert stats["requests_sent"] == stats["requests_completed"] + 4  # 4 retried 500s
        said = int(re.search(r"(\d+) requests sent", r.output).group(1))  # type: ignore[union-attr]
        assert said == stats["requests_sent"] == len(server.calls)


def test_n_more_than_num_instructions_can_give_exits_2_before_anything_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    tasks = seed(tmp_path)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Lighthouses guide ships along the coast at night.\n")
    with WireServer() as server:
        server.responder = respond
        out = tmp_path / "out"
        r = CliRunner().invoke(
            cli, generate(tasks, server, out, "-n", "30", "--num-instructions", "3")
        )
        assert r.exit_code == 2, r.output
        assert "--num-instructions 3 can ever give" in r.output
        assert "at least 6" in r.output
        r = CliRunner().invoke(
            cli,
            [
                *("from-dir", str(docs), "--engine", "openai", "--self-instruct"),
                *("--base-url", server.openai_base_url, "--out", str(out)),
                *("-n", "30", "--num-instructions", "3"),
            ],
        )
        assert r.exit_code == 2, r.output
        assert server.calls == [] and not out.exists()
        # the Python API refuses it too
        import instructgen

        engine = instructgen.engine("openai", base_url=server.openai_base_url)
        try:
            InstructionDataset.generate_dataset(tasks, engine, 30, 3, cache=False)
        except instructgen.errors.ConfigError as exc:
            assert "can ever give" in str(exc)
        else:
            raise AssertionError("no error")
        assert server.calls == []


def test_sigterm_stops_a_run_like_ctrl_c_with_exit_143(tmp_path: Path) -> None:
    tasks = seed(tmp_path)
    env = {**os.environ, "OPENAI_API_KEY": TEST_KEY}
    with WireServer() as server:
        server.responder = respond
        server.latency = 0.1
        cmd = [
            sys.executable,
            "-c",
            MAIN,
            *generate(tasks, server, tmp_path / "out", "-n", "20", "--num-instructions", "20"),
            "--concurrency",
            "4",
        ]
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 60
        while sum(server.successes.values()) < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert time.monotonic() - start < 5
        assert proc.returncode == 143, err
        assert "terminated" in err and "rerun to resume" in err and "Traceback" not in err
        server.latency = 0
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert len(server.paid_twice()) <= 4


def test_sigterm_during_extraction_stops_at_the_next_file(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(SHARED / "corpus" / "img", docs)  # OCR: seconds a file, a minute in all
    env = {**os.environ, "OPENAI_API_KEY": TEST_KEY}
    with WireServer() as server:
        cmd = [
            *(sys.executable, "-c", MAIN, "from-dir", str(docs), "--engine", "openai"),
            *("--base-url", server.openai_base_url, "--out", str(tmp_path / "out")),
            *("--workers", "1"),
        ]
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(4)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 143, err
        assert time.monotonic() - start < 25  # the file being read, not all the others
        assert "terminated" in err and "Traceback" not in err
        # Directory runs stream: files read before the signal may already have been asked
        # about; the files after it are not read, so not all of them reach the server.
        assert len(server.calls) < len(list(docs.iterdir()))  # one request or more a file


def test_a_missing_folder_exits_2_and_makes_no_output_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    out = tmp_path / "out"
    missing = tmp_path / "no-such-folder"
    for command in (["from-dir", str(missing), "--engine", "openai"], ["extract", str(missing)]):
        r = CliRunner().invoke(
            cli, [*command, *(["--out", str(out)] if "--engine" in command else [])]
        )
        assert r.exit_code == 2, r.output
        assert r.stderr.strip() == f"error: {missing}: no such file or directory"
    assert not out.exists()

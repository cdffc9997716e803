"""`make demo` (examples/demo.sh) against an OpenAI-compatible server that answers in the styles
local models use: exit 0, both datasets written, and the rerun too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from selfinstruct_responder import respond
from wire_server import WireServer, qa_responder

from instructgen import InstructionDataset

ROOT = Path(__file__).resolve().parents[1]


def _demo(server: WireServer, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    exe = bin_dir / "instructgen"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m instructgen "$@"\n')
    exe.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "OPENAI_BASE_URL": server.openai_base_url,
        "OUT": str(tmp_path / "demo-out"),
    }
    env.pop("OPENAI_API_KEY", None)
    return subprocess.run(
        ["bash", str(ROOT / "examples" / "demo.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize("style", ["json", "mixed", "bold-no-schema"])
def test_demo_with_a_local_server_writes_both_datasets(tmp_path: Path, style: str) -> None:
    with WireServer() as server:
        server.responder = qa_responder(style.split("-")[0], fallback=respond)
        if style.endswith("no-schema"):
            server.reject_response_formats = {"json_schema", "json_object"}
        done = _demo(server, tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        out = tmp_path / "demo-out"
        tasks, docs = InstructionDataset.load(out / "tasks"), InstructionDataset.load(out / "docs")
        assert len(tasks) == 5
        run = json.loads((out / "docs" / "run.json").read_text())
        assert len(docs) == run["extraction"]["chunks"] * 2 > 0
        assert run["question_answer_replies"]["short_chunks"] == []
        if style == "json":  # the rerun: everything from the cache, same datasets
            sent = len(server.calls)
            again = _demo(server, tmp_path)
            assert again.returncode == 0, again.stderr
            assert len(server.calls) == sent
            assert len(InstructionDataset.load(out / "docs")) == len(docs)

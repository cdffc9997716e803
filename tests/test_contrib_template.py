"""The third-party engine template in contrib/ is installed, listed and generates a dataset."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from click.testing import CliRunner
from conftest import SHARED
from selfinstruct_responder import respond
from wire_server import WireCall

from instructgen import InstructionDataset
from instructgen.cli import cli

TEMPLATE = Path(__file__).resolve().parents[1] / "contrib" / "instructgen-plugin-template"
sys.path.insert(0, str(TEMPLATE / "tests"))

from hello_server import HelloServer  # noqa: E402


def test_template_is_listed() -> None:
    r = CliRunner().invoke(cli, ["plugins", "--json"])
    plugins = {p["name"]: p for p in json.loads(r.stdout)["plugins"]}
    assert "hello-api" in plugins, "install it: make (or pip install -e contrib/...)"
    assert plugins["hello-api"]["distribution"] == "instructgen-plugin-template"
    assert plugins["hello-api"]["registers"] == {"engines": ["hello-api"]}


def test_generate_end_to_end_with_the_template_engine(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    server = HelloServer(
        lambda prompt: respond(
            WireCall("hello", "completion", "/v1/generate", {"prompt": prompt}, "good-key")
        )
    )
    try:
        r = CliRunner(env={"HELLO_API_KEY": "good-key"}).invoke(
            cli,
            [
                "generate",
                str(tasks),
                "--engine",
                "hello-api",
                "--base-url",
                server.url,
                "-n",
                "8",
                "--num-instructions",
                "6",
                "--out",
                str(tmp_path / "out"),
                "--json",
            ],
        )
    finally:
        server.stop()
    assert r.exit_code == 0, r.stderr
    ds = InstructionDataset.load(tmp_path / "out")
    assert len(ds) == 8
    assert {row["engine"] for row in ds} == {"hello-api"}
    assert all(b["model"] == "hello-small" for b in server.bodies)

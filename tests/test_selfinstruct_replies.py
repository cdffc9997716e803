"""Self-Instruct instance replies that parse to nothing are counted in run.json and the summary
line; markdown labels chat models add are read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SHARED, engine_env
from selfinstruct_responder import respond
from wire_server import WireCall, WireServer

from instructgen.cli import cli
from instructgen.selfinstruct.replies import InstanceReplies


def test_markdown_instance_replies_are_read() -> None:
    replies = InstanceReplies()
    text = (
        "### Example 1:\n**Input:** two apples\n**Output:** 2\n\n"
        "**Example 2**\nInput: one\nOutput: 1"
    )
    assert replies.parse(text, False) == [("two apples", "2"), ("one", "1")]
    assert replies.parse("**Class label:** Positive\nText: great", True) == [
        ("Text: great", "Positive")
    ]
    thinking = (
        "<think>Example 1\nInput: draft\nOutput: draft</think>\nExample 1\nInput: a\nOutput: b"
    )
    assert replies.parse(thinking, False) == [("a", "b")]
    assert replies.parse("   ", False) == [("", "")]
    assert replies.to_report() == {"replies": 4, "unparsed": 1, "excerpts": [""]}


def test_generate_counts_instance_replies_that_parse_to_nothing(
    wire_server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def blank_instances(call: WireCall) -> str:
        if "Come up with examples" in call.prompt and call.key[0] in "01234567":
            return "\n"  # some instance replies are empty
        return respond(call)

    wire_server.responder = blank_instances
    seeds = tmp_path / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", seeds)
    env = engine_env(wire_server, "openai")
    monkeypatch.setenv(env["key_var"], env["key"])
    out = tmp_path / "out"
    r = CliRunner().invoke(
        cli,
        [
            "generate",
            str(seeds),
            "--engine",
            "openai",
            "--base-url",
            env["base_url"],
            "-n",
            "10",
            "--num-instructions",
            "20",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.stderr
    run = json.loads((out / "run.json").read_text())
    unparsed = run["unparsed_instance_replies"]
    assert unparsed["replies"] == 20 and unparsed["unparsed"] > 0
    assert f"{unparsed['unparsed']} instance replies unparsed" in r.stdout

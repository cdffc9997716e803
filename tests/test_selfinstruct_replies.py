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


def _previous_parser(text: str, is_classification: bool) -> list[tuple[str, str]]:
    """parse_instances before chat preambles and closing remarks were read."""
    import re

    text = text.strip()
    pairs: list[tuple[str, str]] = []
    if is_classification:
        for chunk in re.split(r"(?:^|\n)Class label:", "\n" + text):
            chunk = chunk.strip()
            if chunk:
                label, _, rest = chunk.partition("\n")
                pairs.append((rest.strip(), label.strip()))
        return pairs
    example = re.compile(r"Example\s?\d+\s*\n?", re.IGNORECASE)
    chunks = [c for c in example.split(text) if c.strip()] if example.search(text) else [text]
    for chunk in chunks:
        inp, _, out = chunk.partition("Output:") if "Output:" in chunk else ("", "", chunk)
        inp = re.sub(r"^Input(?:\s*\d+)?\s*(?:-\s*)?:?", "", inp.strip()).strip()
        pairs.append((inp.strip(), out.strip()))
    return pairs


@pytest.mark.parametrize("clf", [True, False])
def test_replies_in_the_prompts_format_parse_as_before(clf: bool) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import _selfinstruct_replies

    from instructgen.selfinstruct import prompts

    tasks = [
        json.loads(line)["instruction"]
        for line in (SHARED / "data" / "seed_tasks.jsonl").read_text().splitlines()
    ]
    for task in tasks:
        request = prompts.instances_request(task, clf, False)
        call = WireCall("openai", "completion", "/", {"prompt": request.prompt}, None)
        for reply in (respond(call), _selfinstruct_replies.reply(call.prompt, False)):
            assert prompts.parse_instances(reply, clf) == _previous_parser(reply, clf), reply


@pytest.mark.parametrize(
    ("reply", "clf", "pairs"),
    [
        (
            "Sure! Here are some examples:\n\nExample 1\nInput: A cat.\nOutput: Animal.\n\n"
            "Example 2\nInput: A rose.\nOutput: Plant.\n\nLet me know if you need more!",
            False,
            [("A cat.", "Animal."), ("A rose.", "Plant.")],
        ),
        (
            "Here are the instances:\n\nClass label: Positive\nSentence: I love it.\n"
            "class label: Negative\nSentence: Awful.\n\nI hope these help!",
            True,
            [("Sentence: I love it.", "Positive"), ("Sentence: Awful.", "Negative")],
        ),
        (  # a blank line inside an output stays: only a closing remark goes
            "Example 1\nInput: spring\nOutput: A poem:\n\nBuds open.\n\nRain falls.",
            False,
            [("spring", "A poem:\n\nBuds open.\n\nRain falls.")],
        ),
        ("Positive\nSentence: I love it.", True, []),  # no label: no instance (the paper's)
    ],
)
def test_chat_preambles_and_closing_remarks_are_no_instances(
    reply: str, clf: bool, pairs: list[tuple[str, str]]
) -> None:
    assert InstanceReplies().parse(reply, clf) == pairs

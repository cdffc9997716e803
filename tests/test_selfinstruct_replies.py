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


@pytest.mark.parametrize(
    ("reply", "clf", "pairs"),
    [
        (  # the paper's output-first format with a bare label, as models write it
            "Class label: Yes\nInput: The startup raised $2M from angel investors.\n"
            "Class label: No\nInput: The football club lost its third match in a row.",
            True,
            [
                ("The startup raised $2M from angel investors.", "Yes"),
                ("The football club lost its third match in a row.", "No"),
            ],
        ),
        (  # chat style: a preamble, bold labels, blank lines, a closing remark
            "Sure! Here are inputs for each class label:\n\n**Class label:** Positive\n"
            "**Input:** The soup was delicious.\n\n**Class label:** Negative\n"
            "**Input:**\nCold fries and a long wait.\n\nLet me know if you need more!",
            True,
            [("The soup was delicious.", "Positive"), ("Cold fries and a long wait.", "Negative")],
        ),
        (  # named fields carry structure: they are part of the input, as in the paper's data
            "Class label: Similar\nSentence 1: A cat sat.\nSentence 2: A cat was sitting.\n"
            "Class label: Positive\nReview: Great phone.",
            True,
            [
                ("Sentence 1: A cat sat.\nSentence 2: A cat was sitting.", "Similar"),
                ("Review: Great phone.", "Positive"),
            ],
        ),
        (  # a lower-case label and a numbered one
            "Class label: Spam\ninput: Win a free cruise now!\nClass label: Ham\n"
            "Input 2: Lunch at noon?",
            True,
            [("Win a free cruise now!", "Spam"), ("Lunch at noon?", "Ham")],
        ),
        (  # input-first, chat style: bold labels and "Output:" repeated in the output
            "Here you go:\n\n**Example 1**\n**Input:** 3 apples and 2 pears\n"
            "**Output:** Output: 5 fruits\n\n**Example 2**\nInput - 1 + 1\nOUTPUT: 2",
            False,
            [("3 apples and 2 pears", "5 fruits"), ("1 + 1", "2")],
        ),
        (  # words that only start like a label stay
            "Example 1\nInputs: two numbers, 4 and 5\nOutput: 9\n"
            "Example 2\nInput devices: keyboard\nOutput: a peripheral",
            False,
            [("Inputs: two numbers, 4 and 5", "9"), ("Input devices: keyboard", "a peripheral")],
        ),
    ],
)
def test_bare_input_and_output_labels_are_taken_off(
    reply: str, clf: bool, pairs: list[tuple[str, str]]
) -> None:
    assert InstanceReplies().parse(reply, clf) == pairs


def test_no_row_keeps_a_bare_input_label(
    wire_server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole run against a model that labels classification inputs "Input:": neither the
    dataset nor its Alpaca export carries the label."""

    def labelled(call: WireCall) -> str:
        text = respond(call)
        if "generate an input that corresponds" in call.prompt:
            return text.replace("\nText: ", "\nInput: ")
        return text

    wire_server.responder = labelled
    seeds = tmp_path / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", seeds)
    env = engine_env(wire_server, "openai")
    monkeypatch.setenv(env["key_var"], env["key"])
    out = tmp_path / "out"
    args = ["generate", str(seeds), "--engine", "openai", "--base-url", env["base_url"]]
    args += ["-n", "30", "--num-instructions", "30", "--format", "alpaca"]
    r = CliRunner().invoke(cli, [*args, "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = json.loads((out / "dataset.json").read_text())
    from instructgen import InstructionDataset

    ds = InstructionDataset.load(out)
    clf = [row for row in ds.rows if row["is_classification"] and row["text"]]
    assert clf, "the run has classification rows with an input"
    assert not [row for row in ds.rows if row["text"].lower().startswith("input")]
    assert not [row for row in rows if row["input"].lower().startswith("input")]

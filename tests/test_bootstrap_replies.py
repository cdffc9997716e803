"""Bootstrap replies as chat models write them: a preamble, code fences, <think> blocks, "9)"
numbers, bullets, bold words, a closing remark. Replies in the paper's format are split exactly
as the paper's parser splits them."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SHARED, engine_env
from selfinstruct_responder import respond
from wire_server import WireCall, WireServer

from instructgen.cli import cli
from instructgen.selfinstruct import prompts
from instructgen.selfinstruct.prompts import parse_instructions

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def paper_parser(text: str, next_number: int) -> list[str]:
    """The Self-Instruct reference split (Wang et al., 2022, generate_instructions.py), with
    the chat models' repeated "N." dropped first, as instructgen always did."""
    text = "\n" + text.lstrip(" ")
    text = re.sub(rf"^\n\s*{next_number}\s?\.\s*", "\n", text)
    items = []
    for raw in re.split(r"\n\d+\s?\. ", text):
        inst = re.sub(r"\s+", " ", re.sub(r"^\s*\d+\s?\.\s*", "", raw)).strip()
        if inst:
            items.append(inst[0].upper() + inst[1:])
    return items


def _seed_instructions() -> list[str]:
    return [
        json.loads(line)["instruction"]
        for line in (SHARED / "data" / "seed_tasks.jsonl").read_text().splitlines()
    ]


@pytest.mark.parametrize("chat", [True, False])
def test_replies_in_the_papers_format_split_as_the_paper_splits_them(chat: bool) -> None:
    import _selfinstruct_replies

    seeds = _seed_instructions()
    kind = "chat" if chat else "completion"
    compared = 0
    for start in range(0, 160, 4):
        request = prompts.bootstrap_request(seeds[start : start + 8], chat)
        body = {"messages": request.as_messages()} if chat else {"prompt": request.prompt}
        call = WireCall("openai", kind, "/", body, None, list(body.get("messages", [])))
        for reply in (respond(call), _selfinstruct_replies.reply(call.prompt, chat)):
            assert parse_instructions(reply, 9) == paper_parser(reply, 9), reply
            compared += 1
    assert compared == 80


CHAT_STYLE = [
    (
        "Sure! Here are more tasks:\n\n9. Write a haiku about the sea.\n"
        "10. Explain how a bicycle gear works to a child.",
        ["Write a haiku about the sea.", "Explain how a bicycle gear works to a child."],
    ),
    (
        "9. **Write** a haiku about the sea.\n10. Explain gears to a child.\n\n"
        "Let me know if you would like more tasks!",
        ["Write a haiku about the sea.", "Explain gears to a child."],
    ),
    (
        "```\n9. Write a haiku about the sea.\n10. Explain gears to a child.\n```",
        ["Write a haiku about the sea.", "Explain gears to a child."],
    ),
    (
        "<think>\nThe list stops at 8, so I continue at 9.\n\nOk.\n</think>\n"
        "9. Write a haiku about the sea.\n10. Explain gears to a child.",
        ["Write a haiku about the sea.", "Explain gears to a child."],
    ),
    ("<think>\nThe user wants more tasks. Let me", []),  # cut off while thinking
    (
        "9) Write a haiku about the sea.\n10) Explain gears to a child.",
        ["Write a haiku about the sea.", "Explain gears to a child."],
    ),
    (
        "- Write a haiku about the sea.\n- Explain gears to a child.",
        ["Write a haiku about the sea.", "Explain gears to a child."],
    ),
    ("Certainly! Here are 8 new tasks:", []),  # a preamble the stop sequence cut off
    (
        "9. Write a haiku about the sea.\n\n10. Explain gears to a child.",
        ["Write a haiku about the sea.", "Explain gears to a child."],
    ),
    # the paper's continuation, an item ending with a colon: kept
    (
        " Classify the following words into nouns and verbs:\n10. Write a poem.",
        ["Classify the following words into nouns and verbs:", "Write a poem."],
    ),
    (
        "Classify the following words into nouns and verbs:",
        ["Classify the following words into nouns and verbs:"],
    ),
]


@pytest.mark.parametrize(("reply", "expected"), CHAT_STYLE)
def test_chat_style_replies(reply: str, expected: list[str]) -> None:
    assert parse_instructions(reply, 9) == expected


def test_chat_requests_leave_the_blank_line_stop_out() -> None:
    seeds = _seed_instructions()[:8]
    chat = prompts.bootstrap_request(seeds, True)
    completion = prompts.bootstrap_request(seeds, False)
    assert "\n\n" not in chat.stop and "16." in chat.stop
    assert completion.stop == ("\n\n", "\n16", "16.", "16 .")  # the paper's


def test_a_chat_model_that_opens_with_a_preamble_still_fills_the_dataset(
    wire_server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server applies the stop sequences as OpenAI does: with "\\n\\n" among them, a reply
    opening "Sure! Here are more tasks:" and a blank line would end there."""

    def chatty(call: WireCall) -> str:
        text = respond(call)
        if "Come up with a series of tasks" in call.prompt:
            text = f"Sure! Here are more tasks:\n\n{text}\n\nI hope these help!"
        for stop in call.body.get("stop") or ():
            text = text.split(stop)[0]
        return text

    wire_server.responder = chatty
    seeds = tmp_path / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", seeds)
    env = engine_env(wire_server, "openai")
    monkeypatch.setenv(env["key_var"], env["key"])
    out = tmp_path / "out"
    args = ["generate", str(seeds), "--engine", "openai", "--base-url", env["base_url"]]
    r = CliRunner().invoke(cli, [*args, "-n", "10", "--num-instructions", "10", "--out", str(out)])
    assert r.exit_code == 0, r.output
    run = json.loads((out / "run.json").read_text())
    assert run["instructions_generated"] == 10 and run["shortfall_reason"] is None
    from instructgen import InstructionDataset

    instructions = {row["instruction"] for row in InstructionDataset.load(out)}
    assert len(instructions) == 10
    assert not any("Here are" in i or "hope these help" in i for i in instructions)


@pytest.mark.parametrize(
    ("reply", "yes"),
    [
        (" Yes", True),
        (" No", False),
        ("**Yes**", True),
        ("**No**", False),
        ("Answer: Yes", True),
        ('"Yes"', True),
        ("<think>It sorts items into groups.</think>\nYes", True),
        ("No, it asks for a poem.", False),
    ],
)
def test_classification_replies_in_chat_style(reply: str, yes: bool) -> None:
    assert prompts.parse_classification(reply) is yes

"""Alpaca's one-pass prompt and its parsing (tatsu-lab/stanford_alpaca,
``generate_instruction.py`` and ``prompt.txt``, written anew on their structure).

One prompt asks for 20 tasks and shows ``num_prompt_instructions`` seed tasks as numbered
``N. Instruction:`` / ``N. Input:`` / ``N. Output:`` blocks separated by ``###``, ending with the
next number's ``Instruction:`` for the model to continue. The reply is split into blocks and each
block on its three labels, as Alpaca does; on top of that, the parser reads replies as chat models
write them: a preamble line, markdown bold labels, renumbered items, blocks without ``###``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

from instructgen import Message, Request

__all__ = ["AlpacaItem", "Parsed", "encode_prompt", "parse_reply", "request_for"]

CHAT_SYSTEM = (
    "You continue documents exactly in the format they establish. Reply with the "
    "continuation only: no preamble, no commentary."
)
NO_INPUT = "<noinput>"


@dataclass(frozen=True)
class AlpacaItem:
    instruction: str
    input: str
    output: str


@cache
def header() -> str:
    """``prompt.txt``, read once (every request starts with it; reading the package resource
    took about 0.3 ms of the event loop per request)."""
    return resources.files(__package__).joinpath("prompt.txt").read_text("utf-8")


def encode_prompt(examples: Sequence[AlpacaItem]) -> str:
    """Alpaca's prompt: the header, then the examples as numbered blocks, then the next
    number's ``Instruction:``."""
    text = header() + "\n"
    for i, ex in enumerate(examples, start=1):
        instruction = re.sub(r"\s+", " ", ex.instruction).strip().rstrip(":")
        given = ex.input.strip() or NO_INPUT
        text += "###\n"
        text += f"{i}. Instruction: {instruction}\n"
        text += f"{i}. Input:\n{given}\n"
        text += f"{i}. Output:\n{ex.output.strip()}\n"
    text += "###\n"
    return text + f"{len(examples) + 1}. Instruction:"


def request_for(
    examples: Sequence[AlpacaItem],
    chat: bool,
    *,
    max_tokens: int,
    temperature: float,
    top_p: float,
) -> Request:
    """Alpaca's decoding: temperature 1, top_p 1, stop before item 20."""
    text = encode_prompt(examples)
    options = {
        "max_tokens": max_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "stop": ("\n20", "20."),
    }
    if chat:
        msgs = (Message("system", CHAT_SYSTEM), Message("user", text))
        return Request(messages=msgs, **options)  # type: ignore[arg-type]
    return Request(prompt=text, **options)  # type: ignore[arg-type]


_BOLD = re.compile(r"(\*\*|__)")
_HEADING = re.compile(r"^[ \t]*#{1,2}[ \t]+(?=\d)", re.M)  # "## 4. Instruction:" as a heading
_LABEL = re.compile(
    r"^[ \t]*(?:\d+[ \t]*[.)][ \t]*)?(Instruction|Input|Output)[ \t]*:[ \t]*", re.I | re.M
)
_SEPARATOR = re.compile(r"^[ \t]*(?:#{3,}|-{3,})[ \t]*$", re.M)


@dataclass
class Parsed:
    items: list[AlpacaItem]
    unparsed: int = 0
    dropped_cut: int = 0


def parse_reply(text: str, next_number: int, cut_by_length: bool) -> Parsed:
    """The complete blocks of a reply. The reply continues after ``N. Instruction:``; a chat
    model may instead open with a preamble or restate the label. The last block is dropped
    when the reply stopped on length (it is probably cut), as Alpaca does."""
    text = _HEADING.sub("", _BOLD.sub("", text.replace("\r\n", "\n")))
    labels = list(_LABEL.finditer(text))
    first_instruction = next((m for m in labels if m.group(1).lower() == "instruction"), None)
    before = text[: first_instruction.start()] if first_instruction else text
    if _LABEL.search(before) or (first_instruction is None and before.strip()):
        # a continuation: the first instruction's text comes before any label
        text = f"{next_number}. Instruction: " + text.lstrip()
    elif first_instruction is not None:
        text = text[first_instruction.start() :]  # a preamble before the first block: dropped
    starts = [m.start() for m in _LABEL.finditer(text) if m.group(1).lower() == "instruction"]
    blocks = [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]
    out = Parsed([])
    for i, block in enumerate(blocks):
        if i == len(blocks) - 1 and cut_by_length:
            out.dropped_cut += 1
            continue
        item = _block(_SEPARATOR.sub("", block).replace("###", ""))
        if item is None:
            out.unparsed += 1
        else:
            out.items.append(item)
    return out


def _block(block: str) -> AlpacaItem | None:
    """One ``Instruction / Input / Output`` block, labels in that order, each once."""
    found = list(_LABEL.finditer(block))
    if [m.group(1).lower() for m in found] != ["instruction", "input", "output"]:
        return None
    values = [
        block[m.end() : (found[k + 1].start() if k + 1 < len(found) else len(block))].strip()
        for k, m in enumerate(found)
    ]
    instruction, given, output = values
    if given.strip().lower() in (NO_INPUT, "<no input>", "no input", "none", "n/a"):
        given = ""
    if not instruction or not output:
        return None
    return AlpacaItem(re.sub(r"\s+", " ", instruction), given, output)

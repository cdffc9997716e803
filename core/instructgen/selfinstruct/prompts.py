"""Self-Instruct prompts (package data in the paper's formats) and the parsers of their replies."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from instructgen.engine_contract import Message, Request

__all__ = [
    "bootstrap_request",
    "classify_request",
    "instances_request",
    "parse_classification",
    "parse_instances",
    "parse_instructions",
]

# The reference request parameters (Wang et al., 2022; see docs/architecture.md).
BOOTSTRAP: dict[str, object] = {
    "max_tokens": 1024,
    "temperature": 0.7,
    "top_p": 0.5,
    "presence_penalty": 2.0,
    "stop": ("\n\n", "\n16", "16.", "16 ."),
}
CLASSIFY: dict[str, object] = {"max_tokens": 3, "temperature": 0.0, "top_p": 0.0}
INSTANCES: dict[str, object] = {
    "max_tokens": 350,
    "temperature": 0.0,
    "top_p": 0.0,
    "presence_penalty": 1.5,
    "stop": ("Example 6", "Task:"),
}
CLF_INSTANCES: dict[str, object] = {**INSTANCES, "max_tokens": 300}

CHAT_SYSTEM = (
    "You continue documents exactly in the format they establish. Reply with the "
    "continuation only: no preamble, no commentary."
)


@cache
def template(name: str) -> str:
    return (
        resources.files("instructgen.selfinstruct")
        .joinpath(f"templates/{name}.txt")
        .read_text("utf-8")
    )


def _request(text: str, chat: bool, params: dict[str, object], **overrides: object) -> Request:
    merged = {**params, **overrides}
    if chat:
        return Request(messages=(Message("system", CHAT_SYSTEM), Message("user", text)), **merged)  # type: ignore[arg-type]
    return Request(prompt=text, **merged)  # type: ignore[arg-type]


def encode_bootstrap(instructions: list[str], classification: bool = False) -> str:
    text = template("bootstrap_classification" if classification else "bootstrap")
    for i, inst in enumerate(instructions, start=1):
        inst = re.sub(r"\s+", " ", inst).strip().rstrip(":")
        text += f"{i}. {inst}\n"
    return text + f"{len(instructions) + 1}."


def bootstrap_request(instructions: list[str], chat: bool, **overrides: object) -> Request:
    return _request(encode_bootstrap(instructions), chat, BOOTSTRAP, **overrides)


def classify_request(instruction: str, chat: bool, **overrides: object) -> Request:
    text = template("classification") + f"Task: {instruction.strip()}\nIs it classification?"
    return _request(text, chat, CLASSIFY, **overrides)


def instances_request(
    instruction: str, is_classification: bool, chat: bool, **overrides: object
) -> Request:
    name = "instances_output_first" if is_classification else "instances_input_first"
    text = template(name).rstrip() + " " + instruction.strip() + "\n"
    return _request(text, chat, CLF_INSTANCES if is_classification else INSTANCES, **overrides)


_ITEM_SPLIT = re.compile(r"\n\d+\s?\. ")
_LEADING_NUMBER = re.compile(r"^\s*\d+\s?\.\s*")


def parse_instructions(text: str, next_number: int) -> list[str]:
    """Split a continued numbered list into instructions (whitespace normalised).

    Completion models continue after "N."; chat models often repeat the number: both work.
    """
    text = "\n" + text.lstrip(" ")
    text = re.sub(rf"^\n\s*{next_number}\s?\.\s*", "\n", text)
    items = []
    for raw in _ITEM_SPLIT.split(text):
        inst = re.sub(r"\s+", " ", _LEADING_NUMBER.sub("", raw)).strip()
        if inst:
            items.append(inst[0].upper() + inst[1:])
    return items


def parse_classification(text: str) -> bool:
    return text.strip().lower().startswith("yes")


_EXAMPLE = re.compile(r"Example\s?\d+\s*\n?", re.IGNORECASE)


def parse_instances(text: str, is_classification: bool) -> list[tuple[str, str]]:
    """(input, output) pairs from an instance-generation reply."""
    text = text.strip()
    pairs: list[tuple[str, str]] = []
    if is_classification:
        for chunk in re.split(r"(?:^|\n)Class label:", "\n" + text):
            chunk = chunk.strip()
            if not chunk:
                continue
            label, _, rest = chunk.partition("\n")
            pairs.append((rest.strip(), label.strip()))
        return pairs
    chunks = [c for c in _EXAMPLE.split(text) if c.strip()] if _EXAMPLE.search(text) else [text]
    for chunk in chunks:
        if "Output:" in chunk:
            inp, _, out = chunk.partition("Output:")
        else:
            inp, out = "", chunk
        inp = re.sub(r"^Input(?:\s*\d+)?\s*(?:-\s*)?:?", "", inp.strip()).strip()
        pairs.append((inp.strip(), out.strip()))
    return pairs

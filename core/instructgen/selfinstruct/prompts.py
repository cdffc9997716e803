"""Self-Instruct prompts (package data in the paper's formats) and the parsers of their replies."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from instructgen.engine_contract import Message, Request
from instructgen.reply_text import strip_thinking

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
# Chat requests leave out the stop sequence "\n\n": chat models often open with a line such as
# "Sure! Here are more tasks:" and a blank line, where that stop would end the reply before the
# list. parse_instructions cuts a reply at a blank line that does not go on with the list, as
# the stop would have.
CHAT_BOOTSTRAP: dict[str, object] = {**BOOTSTRAP, "stop": ("\n16", "16.", "16 .")}
CLASSIFY: dict[str, object] = {"max_tokens": 3, "temperature": 0.0, "top_p": 0.0}
INSTANCES: dict[str, object] = {
    "max_tokens": 350,
    "temperature": 0.0,
    "top_p": 0.0,
    "presence_penalty": 1.5,
    "stop": ("Example 6", "Task:"),
}
CLF_INSTANCES: dict[str, object] = {**INSTANCES, "max_tokens": 300}

# Completion tokens a stage's reply is expected to have, for the dry run's expected cost (its
# upper bound uses max_tokens). From the Self-Instruct paper's statistics of the generated
# data (Wang et al., 2022, Table 1: instructions average 15.9 words, instance inputs 12.7 and
# outputs 18.9 words) at about 1.33 tokens a word (OpenAI: a token is about 3/4 of a word):
# - bootstrap: the 7-8 items after the 8 listed ones (the prompt stops at 16), each 15.9
#   words plus its number: 7.5 x (15.9 x 1.33 + 3) = 181;
# - classify: "Yes" or "No": 2;
# - instances: 2.5 examples a reply before filtering, each input and output plus the
#   "Example k / Input / Output" labels: 2.5 x ((12.7 + 18.9) x 1.33 + 8) = 125.
EXPECTED_COMPLETION_TOKENS: dict[str, int] = {"bootstrap": 181, "classify": 2, "instances": 125}

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
    return _request(
        encode_bootstrap(instructions), chat, CHAT_BOOTSTRAP if chat else BOOTSTRAP, **overrides
    )


def classify_request(instruction: str, chat: bool, **overrides: object) -> Request:
    text = template("classification") + f"Task: {instruction.strip()}\nIs it classification?"
    return _request(text, chat, CLASSIFY, **overrides)


def instances_request(
    instruction: str, is_classification: bool, chat: bool, **overrides: object
) -> Request:
    name = "instances_output_first" if is_classification else "instances_input_first"
    text = template(name).rstrip() + " " + instruction.strip() + "\n"
    return _request(text, chat, CLF_INSTANCES if is_classification else INSTANCES, **overrides)


_ITEM_SPLIT = re.compile(r"\n\d+\s?[.)] ")
_LEADING_NUMBER = re.compile(r"^\s*\d+\s?[.)]\s*")

_FENCE = re.compile(r"^[ \t]*```[\w-]*[ \t]*$\n?", re.M)
_NUMBERED_LINE = re.compile(r"^\s*\d+\s?[.)]\s", re.M)
_BULLET_LINE = re.compile(r"^[ \t]*[-*\u2022][ \t]+", re.M)
_EMPHASIS = re.compile(r"(\*\*|__)(.+?)\1")
# A chat model's opening line rather than a task ("Sure! Here are more tasks:").
_PREAMBLE = re.compile(
    r"^\s*(?:sure|certainly|of course|absolutely|okay|ok|great|here (?:are|is)|below (?:are|is))"
    r"\b[^\n]*:\s*$",
    re.I,
)


def parse_instructions(text: str, next_number: int) -> list[str]:
    """Split a continued numbered list into instructions (whitespace normalised).

    Completion models continue after "N." as the paper's parser expects, and its split (a
    new item at each line starting with a number and a period) is kept. Chat models often
    repeat the number and write in their own style, which is read too: a preamble before the
    line numbered N, or a reply that is only one ("Here are more tasks:"); code fences;
    ``<think>`` blocks; "N)" numbering; "-" bullets instead of numbers; bold or underlined
    words; and, as the paper's stop sequence "\n\n" would have cut it, anything after a blank
    line that does not go on with the list.
    """
    text = _FENCE.sub("", strip_thinking(text))
    numbered = _NUMBERED_LINE.search(text)
    own = re.search(rf"^\s*{next_number}\s?[.)]\s", text, re.M)
    if own is not None and (numbered is None or numbered.start() == own.start()):
        text = text[own.start() :]  # what came before the line numbered N is a preamble
    elif numbered is None and _PREAMBLE.match(text):
        return []
    elif numbered is None and len(_BULLET_LINE.findall(text)) >= 2:
        text = _BULLET_LINE.sub("0. ", text)  # bullets read as list items
    text = "\n" + text.lstrip(" ")
    text = re.sub(rf"^\n\s*{next_number}\s?[.)]\s*", "\n", text)
    # after a blank line, only a numbered item goes on with the list
    text = re.split(r"\n[ \t]*\n(?![ \t]*\n*[ \t]*\d+\s?[.)]\s)", text.rstrip(), maxsplit=1)[0]
    items = []
    for raw in _ITEM_SPLIT.split(text):
        inst = re.sub(r"\s+", " ", _LEADING_NUMBER.sub("", _EMPHASIS.sub(r"\2", raw))).strip()
        if inst:
            items.append(inst[0].upper() + inst[1:])
    return items


_ANSWER_LEAD = re.compile(r"^[\s*_`\"'>#-]*(?:answer\s*:)?[\s*_`\"']*", re.I)


def parse_classification(text: str) -> bool:
    """Whether the reply says yes: "Yes", " yes.", "**Yes**", "Answer: Yes", after a
    ``<think>`` block."""
    return _ANSWER_LEAD.sub("", strip_thinking(text)).lower().startswith("yes")


_EXAMPLE = re.compile(r"Example\s?\d+\s*\n?", re.IGNORECASE)


# A chat model's closing remark after the last instance ("Let me know if you need more!").
_CLOSING = re.compile(
    r"\n[ \t]*\n[ \t]*(?:let me know|i hope|hope (?:this|these)|feel free|if you (?:need|want|"
    r"would like)|these examples|i can (?:also )?(?:provide|generate|write))[^\n]*\s*\Z",
    re.I,
)
_CLASS_LABEL = re.compile(r"(?:^|\n)[ \t]*Class label[ \t]*:", re.I)
# The reply format's own labels, not part of the text: a bare "Input:" ("Input 2:", "Input -")
# before an input, "Output:" before an output. Named fields ("Sentence 1:", "Review:") are part
# of the input, as in the paper's data, and stay.
_INPUT_LABEL = re.compile(r"^[ \t]*input(?:[ \t]*\d+)?[ \t]*(?::|-[ \t]|(?=\n)|$)\s*", re.I)
_OUTPUT_LABEL = re.compile(r"^[ \t]*output(?:[ \t]*\d+)?[ \t]*:\s*", re.I)
_OUTPUT_AT_LINE = re.compile(r"^[ \t]*output[ \t]*:", re.I | re.M)


def _split_output(chunk: str) -> tuple[str, str] | None:
    """``(input part, output)`` of one input-first instance, split at its first "Output:" (the
    paper's split) or at a line starting with "output:" in another case; ``None`` without."""
    plain = chunk.find("Output:")
    line = _OUTPUT_AT_LINE.search(chunk)
    if line is not None and (plain < 0 or line.start() < plain):
        return chunk[: line.start()], chunk[line.end() :]
    if plain < 0:
        return None
    return chunk[:plain], chunk[plain + len("Output:") :]


def parse_instances(text: str, is_classification: bool) -> list[tuple[str, str]]:
    """(input, output) pairs from an instance-generation reply.

    As the paper's parser: instances are split at "Example N" (inputs first) or "Class label:"
    (outputs first). Chat replies are read too: what comes before the first "Class label:",
    or before the first "Example N" when it holds no "Output:", is a preamble and no
    instance; a closing remark after the last instance is not part of its output. A bare
    "Input:" label is taken off inputs and "Output:" off outputs (a classification reply's
    "Class label: Yes\nInput: The startup ..." gives the input "The startup ..."); named
    fields such as "Sentence 1:" stay."""
    text = _CLOSING.sub("", text.strip())
    pairs: list[tuple[str, str]] = []
    if is_classification:
        for chunk in _CLASS_LABEL.split("\n" + text)[1:]:
            chunk = chunk.strip()
            if not chunk:
                continue
            label, _, rest = chunk.partition("\n")
            pairs.append((_INPUT_LABEL.sub("", rest.strip()), _OUTPUT_LABEL.sub("", label.strip())))
        return pairs
    first = _EXAMPLE.search(text)
    if first is not None and first.start() > 0 and _split_output(text[: first.start()]) is None:
        text = text[first.start() :]  # a preamble before "Example 1"
    chunks = [c for c in _EXAMPLE.split(text) if c.strip()] if first is not None else [text]
    for chunk in chunks:
        split = _split_output(chunk)
        inp, out = split if split is not None else ("", chunk)
        pairs.append((_INPUT_LABEL.sub("", inp.strip()), _OUTPUT_LABEL.sub("", out.strip())))
    return pairs

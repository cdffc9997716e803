"""A stand-in for a model answering llm-judge rating prompts over the wire, in the styles real
models use, and every other prompt as ``selfinstruct_responder.respond`` does.

The score of a row depends only on the rated response's text (so a rerun, or ``instructgen
judge`` on the saved rows, gets the same scores). A few rows first get a reply with no score
("unreadable"); asked again (the prompt then says an earlier reply held no score) they get a
readable one, except a very few that never give a score.
"""

from __future__ import annotations

import hashlib
import json
import re

from selfinstruct_responder import respond as selfinstruct_respond
from wire_server import WireCall

MARK = "Rate how accurate the response is"
AGAIN = "An earlier reply to this request held no score"

# score shares: 5 (35 %), 4.5 (10 %), 4 (25 %), 3 (15 %), 2 (10 %), 1 (5 %)
_SCORES = [5.0] * 35 + [4.5] * 10 + [4.0] * 25 + [3.0] * 15 + [2.0] * 10 + [1.0] * 5
STYLES = ("bare", "label", "bold", "sentence", "json", "preamble", "think", "tenths")


def _digest(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


def rated_part(prompt: str) -> str:
    """The rated row's text (instruction, input, response) inside the prompt's markers."""
    m = re.search(r"(==[0-9a-f]{12}==) instruction\n(.*?)\1 end", prompt, re.S)
    return m.group(2) if m else prompt


def score_of(prompt: str) -> float:
    return _SCORES[_digest(rated_part(prompt)) % len(_SCORES)]


def kind_of(prompt: str) -> str:
    """'never' (no score, however often asked), 'first' (no score the first time) or 'ok'."""
    d = _digest("u" + rated_part(prompt)) % 100
    return "never" if d < 2 else "first" if d < 8 else "ok"


def judge_reply(prompt: str, kind: str = "chat") -> str:
    rest = kind_of(prompt)
    if rest == "never" or (rest == "first" and AGAIN not in prompt):
        return (
            "The response addresses the instruction and is mostly correct, though it could "
            "be more specific about the details the input provides."
        )
    s = score_of(prompt)
    v = f"{s:g}"
    why = "The response follows the instruction and uses the input; 2 details are vague."
    style = STYLES[_digest("s" + rated_part(prompt)) % len(STYLES)]
    if kind == "completion":  # the prompt ends with "Score:"
        return f" {v}\n{why}"
    return {
        "bare": f"{v}\n{why}",
        "label": f"Score: {v}\n\nExplanation: {why}",
        "bold": f"**Rating: {v}/5**\n\n{why}",
        "sentence": f"I would rate this {v} out of 5. {why}",
        "json": json.dumps({"score": s, "explanation": why}),
        "preamble": f"Here is my evaluation of the assistant's response.\n\n{v}\n\n{why}",
        "think": f"<think>Check the 3 facts first.</think>\n{v}\n{why}",
        "tenths": f"Rating: {s * 2:g}/10\n{why}",
    }[style]


def respond(call: WireCall) -> str:
    if MARK in call.prompt:
        return judge_reply(call.prompt, call.kind)
    return selfinstruct_respond(call)


def is_judge(call: WireCall) -> bool:
    return MARK in call.prompt

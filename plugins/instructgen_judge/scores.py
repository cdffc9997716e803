"""Reading a rating out of a model's reply, in whatever style the model chose.

The rubric asks for the score alone on the first line, but replies come as ``4``, ``Score: 4``,
``**Rating: 4/5**``, ``I would rate this 4 out of 5.``, ``{"score": 4}``, a preamble and then
the score on a line of its own, ``<think>`` blocks first, or a fraction of another scale
(``8/10``, rescaled). A reply with no number that reads as a score gives ``None``: it is never
guessed from a number in the explanation.
"""

from __future__ import annotations

import json
import re

__all__ = ["read_score"]

_THINK = re.compile(r"<(think|thinking|reasoning)>.*?(?:</\1>|\Z)", re.S | re.I)
_NUMBER = r"(\d+(?:\.\d+)?)"
_OUT_OF = rf"\s*(?:/|out\s+of|of)\s*{_NUMBER}"
# "Score: 4", "Rating - 4.5/5", "rate this 4 out of 5", "scored it a 3", "Accuracy score: 5"
_LABELLED = re.compile(
    rf"\b(?:score[ds]?|rating|rated?|grade)\b[^0-9\n]{{0,40}}?{_NUMBER}(?:{_OUT_OF})?",
    re.I,
)
_FRACTION = re.compile(rf"(?<![\d.]){_NUMBER}{_OUT_OF}", re.I)
# a line that is only a number, maybe in markdown or with a full stop: "4", "**4.5**", "4."
_BARE_LINE = re.compile(r"^[\s*_#>`'\"(\[]*" + _NUMBER + r"[\s*_`'\")\].!]*$")
_JSON = re.compile(r"\{[^{}]*\}", re.S)
_KEYS = ("score", "rating", "accuracy", "grade")


def _scaled(value: str, out_of: str | None, high: float) -> float | None:
    score = float(value)
    if out_of is not None:
        total = float(out_of)
        if total <= 0:
            return None
        if total != high:
            score = score / total * high
    return score


def read_score(reply: str, scale: tuple[float, float] = (0.0, 5.0)) -> float | None:
    """The score in ``reply`` within ``scale`` (a fraction of another scale is rescaled), or
    ``None`` when the reply holds none."""
    low, high = scale
    text = _THINK.sub("", reply) if "<" in reply else reply
    text = text.replace("```json", "").replace("```", "").strip()
    if not text:
        return None

    def fits(score: float | None) -> float | None:
        return score if score is not None and low <= score <= high else None

    # 1. JSON: {"score": 4} (also inside a fence or after a preamble)
    for match in _JSON.finditer(text):
        try:
            obj = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            for key, value in obj.items():
                if str(key).lower() in _KEYS and isinstance(value, (int, float, str)):
                    try:
                        return fits(float(value))
                    except ValueError:
                        continue
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # 2. The rubric's form: the first line is the score alone
    first = _BARE_LINE.match(lines[0])
    if first:
        return fits(float(first.group(1)))
    # 3. Labelled, in the first lines first: "Score: 4", "**Rating: 4/5**", "rate this 4 of 5"
    for line in lines[:6]:
        found = _LABELLED.search(line) or _FRACTION.search(line)
        if found:
            return fits(_scaled(found.group(1), found.group(2), high))
    # 4. A preamble, then the score on a line of its own
    for line in lines[:6]:
        bare = _BARE_LINE.match(line)
        if bare:
            return fits(float(bare.group(1)))
    return None

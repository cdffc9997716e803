"""A deterministic stand-in for a model answering Evol-Instruct prompts over the wire.

It recognises the evolution prompts (``#Rewritten Prompt#:`` / ``#Created Prompt#:``), the
equality check ("Equal or Not Equal") and plain instructions (answers), and replies in the
styles real models use: bare, after a preamble, under the echoed marker, in quotes, bold or a
code fence, with a closing remark. Some replies make every elimination reason happen: an evolved
prompt that copies the template's words, one returned unchanged, an "Equal" verdict, an answer
that apologises in a few words, an answer of stop words only; and a few evolution replies hold
no prompt at all. Replies depend only on the prompt, so caching and resuming are observable.
"""

from __future__ import annotations

import hashlib
import json
import random
import re

from wire_server import WireCall

TOPICS = [
    "a sourdough starter",
    "tidal energy",
    "the French Revolution",
    "binary search trees",
    "a wedding toast",
    "urban beekeeping",
    "the Krebs cycle",
    "a job interview",
    "supply and demand",
    "haiku",
    "password hashing",
    "marathon training",
]
CONSTRAINTS = [
    "Keep the answer under {n} words.",
    "Include at least {n} concrete examples.",
    "Use a formal tone and cite {n} sources.",
    "Present the result as a table with {n} rows.",
    "Avoid the letter 'e' in the first {n} words.",
]
FORMATS = {
    "JSON data": lambda r: json.dumps({"items": [r.randint(1, 99) for _ in range(3)]}),
    "Python code": lambda r: f"```python\ndef f(x):\n    return x * {r.randint(2, 9)}\n```",
}

_GIVEN = re.compile(r"#(?:The )?Given Prompt#:\n(.*?)\n\n#(?:Rewritten|Created) Prompt#:", re.S)


def _rng(text: str) -> random.Random:
    return random.Random(int(hashlib.sha256(text.encode()).hexdigest()[:16], 16))


def _evolved(prompt: str, given: str, rng: random.Random) -> str:
    if "#Created Prompt#:" in prompt:
        return (
            f"Describe how {rng.choice(TOPICS)} could be explained to a "
            f"{rng.choice(['child', 'sailor', 'historian', 'chef'])} using "
            f"{rng.randint(2, 7)} analogies in at most {rng.randint(50, 400)} words."
        )
    if "constraint or requirement" in prompt:
        return f"{given} {rng.choice(CONSTRAINTS).format(n=rng.randint(3, 12))}"
    if "depth and breadth of the inquiry" in prompt:
        return f"{given} Also discuss its causes, its effects on {rng.choice(TOPICS)}, and why."
    if "more specific concepts" in prompt:
        year = rng.randint(1900, 2020)
        return f"{given} Focus specifically on {rng.choice(TOPICS)} in the year {year}."
    if "several steps" in prompt:
        return f"{given} Reason step by step and justify each of the {rng.randint(3, 6)} steps."
    m = re.search(r"Add (.+?) format data as input data", prompt)
    fmt = m.group(1) if m else "JSON data"
    data = FORMATS.get(fmt, lambda r: f"<data>{r.randint(1, 999)}</data>")(rng)
    return f"{given} Use this {fmt} as input:\n{data}"


def _style(text: str, rng: random.Random, marker: str) -> str:
    r = rng.random()
    if r < 0.45:
        return text
    if r < 0.6:
        return f"Here is the rewritten prompt:\n\n{text}"
    if r < 0.7:
        return f"{marker}:\n{text}"
    if r < 0.76:
        return f'"{text}"' if '"' not in text else text
    if r < 0.82:
        return f"**{marker.strip('#')}:**\n{text}"
    if r < 0.88:
        return f"```\n{text}\n```" if "```" not in text else text
    if r < 0.94:
        return f"{text}\n\nThis rewritten prompt adds one requirement while staying concise."
    return f"<think>The user wants a harder prompt.</think>\n{text}"


def evolution_reply(prompt: str) -> str:
    rng = _rng(prompt)
    m = _GIVEN.search(prompt)
    given = m.group(1).strip() if m else "Explain something."
    marker = "#Created Prompt#" if "#Created Prompt#:" in prompt else "#Rewritten Prompt#"
    r = rng.random()
    if r < 0.05:  # copies the template's words
        return f"Rewrite the given prompt so that it also asks about {rng.choice(TOPICS)}."
    if r < 0.08:  # unchanged
        return given
    if r < 0.10:  # nothing usable
        return "<think>I am not sure how to make this harder without changing its meaning"
    return _style(_evolved(prompt, given, rng), rng, marker)


def equality_reply(prompt: str) -> str:
    rng = _rng(prompt)
    if rng.random() < 0.08:
        return rng.choice(["Equal", "**Equal**", "Equal.", "The two prompts are equal."])
    return rng.choice(
        [
            "Not Equal",
            "Not Equal.",
            "**Not Equal**",
            "The two prompts are not equal.",
            "Not Equal. The second prompt adds a requirement.",
        ]
    )


def answer_reply(prompt: str) -> str:
    rng = _rng(prompt)
    r = rng.random()
    if r < 0.05:
        return "I'm sorry, but I can't help with that request as it is phrased."
    if r < 0.07:
        return rng.choice(["It is what it is.", "...", "Yes, and so on."])
    topic = rng.choice(TOPICS)
    sentences = [
        f"Here is a careful answer about {topic}.",
        f"First, consider the {rng.choice(['history', 'mechanics', 'costs', 'risks'])}.",
        f"Second, {rng.randint(2, 40)} practical examples show how it works.",
        "Finally, the main trade-offs are summarised below.",
    ]
    body = " ".join(sentences[: rng.randint(2, 4)])
    return (
        body
        + "\n\n- "
        + "\n- ".join(f"Point {i}: detail {rng.randint(1, 999)}" for i in range(1, 4))
    )


def respond(call: WireCall) -> str:
    prompt = call.prompt
    if "#Rewritten Prompt#:" in prompt or "#Created Prompt#:" in prompt:
        return evolution_reply(prompt)
    if "Equal or Not Equal" in prompt:
        return equality_reply(prompt)
    return answer_reply(prompt)

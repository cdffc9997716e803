"""A deterministic stand-in for a model answering Self-Instruct prompts over the wire.

It recognises the bootstrap, classification and instance prompts and answers in the format a
real model would, with some near-duplicates, blacklisted and too-short items so that the filters
have real work. Answers depend only on the prompt (so caching and resuming are observable).
"""

from __future__ import annotations

import hashlib
import random
import re
import sys
from pathlib import Path

from wire_server import WireCall

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _selfinstruct_replies

VERBS = [
    "Explain",
    "Summarize",
    "Compare",
    "Describe",
    "List",
    "Rewrite",
    "Evaluate",
    "Classify",
    "Suggest",
    "Outline",
    "Translate",
    "Critique",
    "Plan",
    "Estimate",
    "Design",
    "Identify",
]
NOUNS = [
    "budget",
    "recipe",
    "itinerary",
    "poem",
    "contract",
    "email",
    "lesson",
    "workout",
    "garden",
    "invoice",
    "speech",
    "puzzle",
    "playlist",
    "experiment",
    "timeline",
    "review",
    "museum",
    "bridge",
    "satellite",
    "orchestra",
    "volcano",
    "startup",
    "library",
    "ferry",
]
ADJS = [
    "quarterly",
    "vegan",
    "historic",
    "formal",
    "beginner",
    "remote",
    "coastal",
    "urban",
    "seasonal",
    "minimalist",
    "medieval",
    "solar",
    "nocturnal",
    "academic",
    "rural",
    "arctic",
]
AUDIENCES = [
    "a nurse",
    "a retired teacher",
    "first-year students",
    "a small bakery",
    "a hiking club",
    "new parents",
    "a city council",
    "a chess coach",
    "tourists",
    "a radio host",
    "software testers",
    "a choir",
]


def _rng(text: str) -> random.Random:
    return random.Random(int(hashlib.sha256(text.encode()).hexdigest()[:16], 16))


def _instruction(rng: random.Random) -> str:
    v, a, n, who = rng.choice(VERBS), rng.choice(ADJS), rng.choice(NOUNS), rng.choice(AUDIENCES)
    n2 = rng.choice(NOUNS)
    shapes = [
        f"{v} a {a} {n} for {who}, mentioning the {n2}.",
        f"{v} how {who} could improve their {a} {n} without a {n2}",
        f"Given a {n}, {v.lower()} its {a} aspects in {rng.randint(2, 9)} bullet points.",
        f"{v} the differences between a {a} {n} and a {n2} for {who}.",
    ]
    return rng.choice(shapes)


def qa_reply(prompt: str, kind: str) -> str:
    """n question/answer pairs naming the document the prompt names."""
    n = int(re.search(r"Write (\d+) different question-answer pairs", prompt).group(1))  # type: ignore[union-attr]
    name = re.search(r"^Document: (.+)$", prompt, re.M).group(1)  # type: ignore[union-attr]
    part = re.search(r"^Part (\d+) of", prompt, re.M).group(1)  # type: ignore[union-attr]
    lines = []
    for i in range(1, n + 1):
        lines.append(f"Q{i}: What does part {part} of {name} say about point {i}?")
        lines.append(f"A{i}: Part {part} of {name} explains point {i} in detail.")
    text = "\n".join(lines)
    return text[len("Q1:") :] if kind == "completion" else text


def respond(call: WireCall) -> str:
    prompt = call.prompt
    rng = _rng(prompt)
    if "different question-answer pairs" in prompt:
        return qa_reply(prompt, call.kind)
    if "come up with a set of 20 diverse task instructions" in prompt:
        return alpaca_reply(prompt, call.kind)
    if "Is it classification?" in prompt:
        task = prompt.rsplit("Task:", 1)[-1].replace("Is it classification?", "")
        return " Yes" if re.search(r"classif|whether|Identify", task, re.I) else " No"
    if "generate an input that corresponds" in prompt:
        labels = ["Positive", "Negative", "Neutral"]
        return "\n".join(
            f"Class label: {lab}\nText: A {rng.choice(ADJS)} {rng.choice(NOUNS)} "
            f"described for {rng.choice(AUDIENCES)}."
            for lab in labels
        )
    if "Come up with examples for the following tasks" in prompt:
        k = rng.randint(1, 3)
        parts = []
        for i in range(1, k + 1):
            parts.append(
                f"Example {i}\nInput: The {rng.choice(ADJS)} {rng.choice(NOUNS)} "
                f"of {rng.choice(AUDIENCES)}.\nOutput: A {rng.choice(ADJS)} answer "
                f"about the {rng.choice(NOUNS)} number {rng.randint(1, 999)}."
            )
        if rng.random() < 0.15:
            parts.append(f"Example {k + 1}\nInput: Same input.\nOutput: Same input.")
        return "\n".join(parts)
    m = re.search(r"\n(\d+)\.\s*$", prompt)
    if m:  # bootstrap: continue the numbered list
        start = int(m.group(1))
        listed = re.findall(r"^\d+\. (.+)$", prompt, re.M)
        items = []
        for _ in range(rng.randint(4, 7)):
            r = rng.random()
            if r < 0.08 and listed:
                items.append(rng.choice(listed))  # a near-copy: ROUGE must drop it
            elif r < 0.14:
                items.append(f"Draw a {rng.choice(NOUNS)} map for {rng.choice(AUDIENCES)}.")
            elif r < 0.18:
                items.append("Say hello.")  # too short
            elif r < 0.21:
                items.append(f"Write a program that sorts a {rng.choice(NOUNS)} list.")
            else:
                items.append(_instruction(rng))
        lines = []
        for i, item in enumerate(items):
            num = start + i
            lines.append(item if i == 0 else f"{num}. {item}")
        body = "\n".join(lines)
        return f"{start}. " + body if call.kind == "chat" else " " + body
    return "I do not understand the request."


def alpaca_reply(prompt: str, kind: str) -> str:
    """Alpaca replies as models write them: the benchmarks' generator (one generator for
    tests and benchmarks; varied enough that most items pass ROUGE-L novelty)."""
    return _selfinstruct_replies.alpaca(prompt, kind == "chat")

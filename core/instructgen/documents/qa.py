"""Question/answer generation from a chunk, and a tolerant parser of the replies."""

from __future__ import annotations

import re

from instructgen.engines import Message, Request

__all__ = ["parse_qa", "qa_request"]

SYSTEM = (
    "You write question-answer pairs for training an assistant. Questions must be "
    "answerable from the given document excerpt alone; answers must be complete and "
    "correct according to it."
)

TEMPLATE = """Document: {name}
Path: {rel}
Part {index} of {total}

---
{chunk}
---

Write {n} different question-answer pairs about the excerpt above from "{name}". Use exactly \
this format and nothing else:

Q1: <question>
A1: <answer>
Q2: <question>
A2: <answer>
"""


def qa_request(
    chunk: str,
    *,
    rel: str,
    index: int,
    total: int,
    n: int,
    chat: bool,
    max_tokens: int = 1500,
    temperature: float = 0.7,
) -> Request:
    """Every chunk's prompt names the file (its relative path and name), not just the first."""
    name = rel.rsplit("/", 1)[-1]
    text = TEMPLATE.format(name=name, rel=rel, index=index + 1, total=total, chunk=chunk, n=n)
    if chat:
        return Request(
            messages=(Message("system", SYSTEM), Message("user", text)),
            max_tokens=max_tokens,
            temperature=temperature,
        )
    return Request(
        prompt=SYSTEM + "\n\n" + text + "\nQ1:", max_tokens=max_tokens, temperature=temperature
    )


_Q = r"(?:\*\*)?\s*(?:Q(?:uestion)?\s*\d*|\d+[.)]\s*(?:Q(?:uestion)?\s*\d*)?)\s*[:.)-]?\s*(?:\*\*)?"
_A = r"(?:\*\*)?\s*A(?:nswer)?\s*\d*\s*[:.)-]\s*(?:\*\*)?"
_PAIR = re.compile(
    rf"(?:^|\n)\s*{_Q}\s*(?P<q>.+?)\s*\n\s*{_A}\s*(?P<a>.+?)"
    rf"(?=\n\s*(?:{_Q}).+?\n\s*{_A}|\Z)",
    re.S | re.I,
)


def parse_qa(text: str, *, completion_prefix: bool = False) -> list[tuple[str, str]]:
    """(question, answer) pairs from "Q1:/A1:", "Question:/Answer:", "1. Q: ... A: ...",
    markdown bold variants. ``completion_prefix``: the prompt ended with "Q1:"."""
    if completion_prefix:
        text = "Q1: " + text.lstrip()
    pairs = []
    for m in _PAIR.finditer(text.strip()):
        q = re.sub(r"\s+", " ", m.group("q")).strip().strip("*").strip()
        a = m.group("a").strip().strip("*").strip()
        if q and a:
            pairs.append((q, a))
    return pairs

"""Evol-Instruct replies for the benchmark server: the tests' stand-in model
(tests/evol_responder.py), which writes evolved prompts, verdicts and answers in real models'
styles and makes every elimination reason occur."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from evol_responder import answer_reply, equality_reply, evolution_reply

__all__ = ["kind", "reply"]


def kind(prompt: str) -> str:
    if "#Rewritten Prompt#:" in prompt or "#Created Prompt#:" in prompt:
        return "evolve"
    if "Equal or Not Equal" in prompt:
        return "judge"
    return "answer"


def reply(prompt: str) -> str:
    return {"evolve": evolution_reply, "judge": equality_reply, "answer": answer_reply}[
        kind(prompt)
    ](prompt)

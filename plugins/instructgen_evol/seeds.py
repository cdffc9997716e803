"""The initial pool: the seed instructions of a method input (a tasks file, a saved dataset or
a JSONL file of instructions), each with its input when it has one."""

from __future__ import annotations

from instructgen import MethodInput
from instructgen_evol.evolution import Seed

__all__ = ["seed_text", "seeds_of"]


def seed_text(instruction: str, given_input: str = "") -> str:
    """An instruction with its input on the lines after it, as the paper evolves Alpaca's
    instruction and input together."""
    instruction, given_input = instruction.strip(), given_input.strip()
    return f"{instruction}\n{given_input}" if given_input else instruction


def seeds_of(source: MethodInput) -> list[Seed]:
    """Tasks: the instruction and its first instance's input; a saved dataset: each row's
    instruction and input (``text``); instructions: as they are. Empty instructions are left
    out."""
    if source.kind == "tasks":
        seeds = [
            Seed(t.id, seed_text(t.instruction, t.instances[0].input if t.instances else ""))
            for t in source.tasks
        ]
    elif source.kind == "dataset":
        seeds = [
            Seed(f"row_{i}", seed_text(str(r.get("instruction") or ""), str(r.get("text") or "")))
            for i, r in enumerate(source.rows)
        ]
    else:
        seeds = [
            Seed(f"instruction_{i}", seed_text(text))
            for i, text in enumerate(source.instructions())
        ]
    return [s for s in seeds if s.text]

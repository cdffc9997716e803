"""The initial pool: seed instructions from a tasks file, a saved dataset, or a JSON Lines
(or JSON array) file of instructions such as Alpaca's ``alpaca_data.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from instructgen import ConfigError, InstructionDataset, load_tasks
from instructgen_evol.evolution import Seed

__all__ = ["load_seeds", "seed_text"]


def seed_text(instruction: str, given_input: str = "") -> str:
    """An instruction with its input on the lines after it, as the paper evolves Alpaca's
    instruction and input together."""
    instruction, given_input = instruction.strip(), given_input.strip()
    return f"{instruction}\n{given_input}" if given_input else instruction


def load_seeds(path: str | Path) -> list[Seed]:
    """Seeds from ``path``: a saved dataset folder, a tasks file (lines with ``instances``),
    or a file of instructions (``instruction`` and optional ``input``/``text``, ``id``)."""
    path = Path(path)
    if path.is_dir():
        ds = InstructionDataset.load(path)
        return [
            Seed(str(i), seed_text(row["instruction"], row.get("text") or ""))
            for i, row in enumerate(ds)
            if str(row["instruction"]).strip()
        ]
    if not path.is_file():
        raise ConfigError(f"{path}: no such file or folder")
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read as UTF-8 text ({exc})") from None
    items = _records(path, raw)
    if not items:
        raise ConfigError(f"{path}: no seed instructions in the file")
    if all("instances" in obj for _, obj in items if isinstance(obj, dict)):
        return [
            Seed(t.id, seed_text(t.instruction, t.instances[0].input if t.instances else ""))
            for t in load_tasks(path)
        ]
    seeds: list[Seed] = []
    for line, obj in items:
        where = f"{path}:{line}" if line else f"{path}: item {len(seeds) + 1}"
        if not isinstance(obj, dict):
            raise ConfigError(f"{where}: expected a JSON object with an 'instruction' field")
        instruction = obj.get("instruction")
        if not isinstance(instruction, str) or not instruction.strip():
            raise ConfigError(f"{where}: instruction: a non-empty string is required")
        given = obj.get("input", obj.get("text", ""))
        if given is None:
            given = ""
        if not isinstance(given, str):
            raise ConfigError(f"{where}: input: must be a string")
        sid = obj.get("id")
        seeds.append(
            Seed(str(sid) if sid is not None else str(len(seeds)), seed_text(instruction, given))
        )
    return seeds


def _records(path: Path, raw: str) -> list[tuple[int | None, Any]]:
    """(line, object) for JSON Lines; (None, object) for the items of a JSON array."""
    stripped = raw.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        return [(None, obj) for obj in data]
    out: list[tuple[int | None, Any]] = []
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((n, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
    return out

"""Small text helpers every reader of the package uses: joining non-empty parts, table cells
and rows as ``a | b | c`` lines."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def join(parts: Iterable[str], sep: str = "\n") -> str:
    """The non-empty parts, stripped, joined by ``sep``."""
    return sep.join(p for p in (x.strip() for x in parts) if p)


def cell(value: Any) -> str:
    """A table cell as text (``3.0`` as ``3``, ``None`` as empty)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def row(values: Iterable[Any]) -> str:
    """A table row as one line: its non-empty cells joined by `` | ``."""
    return " | ".join(t for t in map(cell, values) if t)

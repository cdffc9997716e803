"""Rich Text Format (.rtf) through striprtf."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["read_rtf"]


def read_rtf(path: Path) -> tuple[str, dict[str, Any]]:
    from striprtf.striprtf import rtf_to_text

    raw = path.read_bytes().decode("latin-1")  # RTF is 7-bit; \'xx escapes carry the rest
    return rtf_to_text(raw, errors="replace"), {}

"""Plain-text formats: txt, md, csv, json — UTF-8, UTF-16/32 with a BOM, and legacy encodings
(cp1252, ISO-8859-x, ...) detected with charset-normalizer."""

from __future__ import annotations

import codecs
import csv
import io
import json
from pathlib import Path
from typing import Any

from instructgen.errors import ExtractionError
from instructgen.extractor import Extracted, Extractor
from instructgen.hookspecs import hookimpl
from instructgen.registry import ExtractorRegistry

__all__ = ["TextExtractor", "decode_bytes"]

_BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]

_BINARY_MAGIC = (
    b"PK\x03\x04",
    b"\xd0\xcf\x11\xe0",
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"GIF8",
    b"II*\x00",
    b"MM\x00*",
    b"RIFF",
    b"ID3",
    b"OggS",
    b"fLaC",
)


def decode_bytes(data: bytes) -> tuple[str, str]:
    """(text, encoding): BOM first, then strict UTF-8, then detection."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            return data.decode(enc), enc
    try:
        text = data.decode("utf-8")
        if "\x00" not in text:
            return text, "utf-8"
    except UnicodeDecodeError:
        pass
    zeros_even, zeros_odd = data[0::2].count(0), data[1::2].count(0)
    if len(data) >= 4 and max(zeros_even, zeros_odd) > len(data) // 4:
        # UTF-16 without a BOM: one byte of each ASCII character is zero
        if (
            data[0::4].count(0) > len(data) // 8
            and data[1::4].count(0) > len(data) // 8
            and data[2::4].count(0) > len(data) // 8
        ):
            enc = "utf-32-be" if data[3::4].count(0) < len(data) // 8 else "utf-32-le"
        else:
            enc = "utf-16-be" if zeros_even > zeros_odd else "utf-16-le"
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError:
            pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise ValueError("unknown text encoding")
    return str(best), best.encoding


class TextExtractor(Extractor):
    name = "text"
    extensions = ("txt", "md", "markdown", "csv", "tsv", "json", "jsonl", "text", "log", "rst")
    mime_types = ("text/plain", "text/markdown", "text/csv", "application/json")
    priority = 10

    def sniff(self, head: bytes) -> bool:
        if any(head.startswith(b) for b, _ in _BOMS):
            return True
        if head.lstrip()[:5] == b"%PDF-" or head.startswith(_BINARY_MAGIC):
            return False
        if b"\x00" in head:
            # UTF-16/32 without a BOM: many zeros, yet one byte of every character never is
            controls = sum(1 for b in head if 0 < b < 32 and b not in (9, 10, 12, 13))
            return (
                len(head) >= 8
                and head.count(0) >= len(head) // 4
                and controls <= len(head) // 100
                and any(0 not in head[k::4] for k in range(4))
            )
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start > len(head) - 4:  # cut inside a multi-byte character
                return True
            # a legacy 8-bit encoding (cp1252, ISO-8859-x) has almost no control bytes
            controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13, 27))
            return controls <= len(head) // 100
        return True

    def extract(self, path: Path) -> Extracted:
        if _mostly_nul(path):  # e.g. a sparse file: gigabytes of zeros, never read
            raise ExtractionError(str(path), "not text (mostly NUL bytes)", final=True)
        data = path.read_bytes()
        if not data:
            raise ExtractionError(str(path), "empty file")
        try:
            text, encoding = decode_bytes(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ExtractionError(str(path), f"cannot decode text: {exc}") from None
        suffix = path.suffix.lower()
        meta: dict[str, Any] = {"encoding": encoding}
        if suffix == ".csv":
            text = _csv_text(text)
        elif suffix == ".json":
            text = _json_text(text, meta)
        if not text.strip():
            raise ExtractionError(str(path), "no text (only whitespace)")
        return Extracted(text.strip(), meta)


def _mostly_nul(path: Path, block: int = 1 << 16) -> bool:
    """Whether blocks from the start, middle and end of the file are nine tenths NUL bytes
    (text in UTF-32 has at most three quarters)."""
    size = path.stat().st_size
    if size == 0:
        return False
    with path.open("rb") as fh:
        for offset in {0, max(0, size // 2 - block // 2), max(0, size - block)}:
            fh.seek(offset)
            data = fh.read(block)
            if data and data.count(0) < len(data) * 9 // 10:
                return False
    return True


def _csv_text(text: str) -> str:
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.reader(io.StringIO(text), dialect))
    return "\n".join(" | ".join(cell.strip() for cell in row) for row in rows if any(row))


def _json_text(text: str, meta: dict[str, Any]) -> str:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        meta["json"] = "invalid, read as text"
        return text
    lines: list[str] = []

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{key}[{i}]")
        elif value is not None and str(value).strip():
            lines.append(f"{key}: {value}" if key else str(value))

    walk(obj, "")
    return "\n".join(lines)


@hookimpl
def register_extractors(registry: ExtractorRegistry) -> None:
    registry.add(TextExtractor)

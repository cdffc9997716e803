"""Plain-text formats: txt, md, csv, json — UTF-8, UTF-16/32 with a BOM, and legacy encodings
(cp1252, ISO-8859-x, ...) detected with charset-normalizer."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from instructgen import (
    BOMS,
    Extracted,
    ExtractionError,
    Extractor,
    ExtractorRegistry,
    decode_bytes,
    hookimpl,
    looks_like_email,
)
from instructgen_text.json_values import json_text

__all__ = ["TextExtractor"]

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


class TextExtractor(Extractor):
    name = "text"
    extensions = ("txt", "md", "markdown", "csv", "tsv", "json", "jsonl", "text", "log", "rst")
    mime_types = ("text/plain", "text/markdown", "text/csv", "application/json")
    priority = 10

    def sniff(self, head: bytes) -> bool:
        if looks_like_email(head):
            # an e-mail saved as .txt (or as UTF-16 by a Windows tool): the e-mail reader's,
            # or its MIME source (boundaries, headers, HTML tags) would become the text
            return False
        if any(head.startswith(b) for b, _ in BOMS):
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
        elif suffix in (".json", ".jsonl"):
            text = json_text(text, meta, lines=suffix == ".jsonl")
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


@hookimpl
def register_extractors(registry: ExtractorRegistry) -> None:
    registry.add(TextExtractor)

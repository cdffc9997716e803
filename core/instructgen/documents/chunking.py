"""Splitting text into chunks of at most ``chunk_size`` characters on paragraph, then
sentence, then word boundaries, with a small overlap so no fact is cut in half unseen."""

from __future__ import annotations

import re

__all__ = ["chunk_text"]

_PARAGRAPHS = re.compile(r"\n\s*\n")
_SENTENCES = re.compile(r"(?<=[.!?。！？])\s+")


def _pieces(text: str, size: int) -> list[str]:
    out: list[str] = []
    for para in _PARAGRAPHS.split(text):
        para = para.strip()
        if not para:
            continue
        if len(para) <= size:
            out.append(para)
            continue
        for sent in _SENTENCES.split(para):
            start = 0  # cut an enormous sentence at a space if possible, moving an offset
            # along it (copying the rest after each cut made long lines quadratic)
            while len(sent) - start > size:
                cut = sent.rfind(" ", start, start + size) - start
                cut = cut if cut > size // 2 else size
                out.append(sent[start : start + cut].strip())
                start += cut
            rest = sent[start:].strip() if start else sent.strip()
            if rest:
                out.append(rest)
    return out


def chunk_text(text: str, chunk_size: int = 8000, overlap: int = 200) -> list[str]:
    if chunk_size < 100:
        raise ValueError("chunk_size must be at least 100 characters")
    overlap = max(0, min(overlap, chunk_size // 4))
    chunks: list[str] = []
    current: list[str] = []
    length = 0
    for piece in _pieces(text, chunk_size - overlap):
        extra = len(piece) + (2 if current else 0)
        if current and length + extra > chunk_size:
            chunks.append("\n\n".join(current))
            tail = chunks[-1][-overlap:] if overlap else ""
            cut = tail.find(" ")
            tail = tail[cut + 1 :] if cut >= 0 else tail
            current, length = ([tail], len(tail)) if tail else ([], 0)
            extra = len(piece) + (2 if current else 0)
        current.append(piece)
        length += extra
    if current and any(p.strip() for p in current):
        chunks.append("\n\n".join(current))
    return chunks

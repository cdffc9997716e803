"""Reading a folder the way a directory run does (discovery, then the streamed reader with its
extraction cache), collected in discovery order for tests that look at every file at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import instructgen.documents.chunking as chunking
from instructgen.documents.discovery import Found, discover_files
from instructgen.documents.stream import stream_extract
from instructgen.documents.types import Chunk, ExtractOptions, ExtractResult


def read_found(
    found: Sequence[Found],
    options: ExtractOptions | None = None,
    cache_path: str | Path | None = None,
    on_result: Callable[[ExtractResult], None] | None = None,
) -> list[ExtractResult]:
    """Every found file's result (``stream_extract``), in the order of ``found``."""
    got: dict[int, ExtractResult] = {}
    for i, res in stream_extract(found, options or ExtractOptions(), cache_path):
        got[i] = res
        if on_result is not None:
            on_result(res)
    return [got[i] for i in sorted(got)]


@dataclass
class Folder:
    files: list[ExtractResult]
    chunks: list[Chunk]

    def summary(self) -> dict[str, Any]:
        return {
            "files": len(self.files),
            "read": sum(1 for f in self.files if f.text),
            "from_cache": sum(f.cached for f in self.files),
            "chunks": len(self.chunks),
        }


def read_folder(
    path: str | Path,
    *,
    chunk_size: int = 8000,
    cache_path: str | Path | None = None,
    **limits: Any,
) -> Folder:
    """Every file under ``path`` read (and chunked, in the workers) under ``limits`` (the
    fields of ``ExtractOptions``: workers, timeout, max_bytes, ...)."""
    options = ExtractOptions(chunk_size=chunk_size, **limits)
    files = read_found(discover_files(path, options), options, cache_path)
    chunks: list[Chunk] = []
    for f in files:
        if f.text:
            parts = f.chunks if f.chunks is not None else chunking.chunk_text(f.text, chunk_size)
            chunks.extend(Chunk(f.rel, k, len(parts), part) for k, part in enumerate(parts))
    return Folder(files, chunks)

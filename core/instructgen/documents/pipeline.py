"""Directory to dataset: discover → extract (worker processes, cached by content hash) → chunk →
question/answer pairs per chunk through a dispatcher. ``runs.run_from_dir`` wires these steps
to an engine, the caches and an executor, and optionally runs Self-Instruct on top."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from instructgen.dispatch import Dispatcher, gather_values
from instructgen.documents.chunking import chunk_text
from instructgen.documents.discovery import discover_files
from instructgen.documents.extraction import extract_files
from instructgen.documents.qa import ChunkPairs, qa_for_chunk
from instructgen.documents.types import Chunk, ExtractOptions, ExtractResult
from instructgen.errors import EngineError
from instructgen.executor import Executor
from instructgen.limits import DEFAULT_FILE_TIMEOUT, DEFAULT_MAX_BYTES, DEFAULT_MAX_MEMORY_MB
from instructgen.progress import ProgressCallback, ProgressEvent, emit

log = logging.getLogger("instructgen.documents")

__all__ = [
    "Chunk",
    "ScanResult",
    "generate_all_pairs",
    "generate_chunk_pairs",
    "generate_pairs",
    "read_dir",
    "scan",
]


@dataclass
class ScanResult:
    files: list[ExtractResult]
    chunks: list[Chunk]

    @property
    def skipped(self) -> list[dict[str, Any]]:
        return [{"file": f.rel, "reason": f.skip} for f in self.files if f.skip]

    def summary(self) -> dict[str, Any]:
        read = [f for f in self.files if f.text]
        return {
            "files": len(self.files),
            "read": len(read),
            "skipped": len(self.skipped),
            "from_cache": sum(f.cached for f in self.files),
            "characters": sum(f.chars for f in read),
            "chunks": len(self.chunks),
        }


def scan(
    path: str | Path,
    *,
    chunk_size: int = 8000,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    workers: int = 2,
    timeout: float = DEFAULT_FILE_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_memory_mb: int = DEFAULT_MAX_MEMORY_MB,
    cache_path: str | Path | None = None,
    progress: ProgressCallback | None = None,
    executor: Executor | None = None,
    follow_symlinks: bool = False,
    skip_dirs: Sequence[str | Path] = (),
) -> ScanResult:
    """Read every file under ``path`` and chunk it; bad files are skipped with a reason.

    Limits per file: ``max_bytes`` (larger files are not read), ``timeout`` seconds and
    ``max_memory_mb`` megabytes of memory (0: none) in a worker process. The same as
    ``read_dir`` with those limits as one ``ExtractOptions``."""
    options = ExtractOptions(
        workers=workers,
        timeout=timeout,
        max_memory_mb=max_memory_mb,
        max_bytes=max_bytes,
        follow_symlinks=follow_symlinks,
    )
    return read_dir(
        path,
        options,
        chunk_size=chunk_size,
        include=include,
        exclude=exclude,
        cache_path=cache_path,
        progress=progress,
        executor=executor,
        skip_dirs=skip_dirs,
    )


def read_dir(
    path: str | Path,
    options: ExtractOptions,
    *,
    chunk_size: int = 8000,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    cache_path: str | Path | None = None,
    progress: ProgressCallback | None = None,
    executor: Executor | None = None,
    skip_dirs: Sequence[str | Path] = (),
    stop: threading.Event | None = None,
) -> ScanResult:
    """Read every file under ``path`` within the per-file limits ``options`` and chunk it (in
    the worker, under those limits), on ``executor`` (None: worker processes on this machine).

    Symbolic links leading out of ``path`` are not followed unless ``options.follow_symlinks``;
    ``skip_dirs`` (an output folder inside ``path``) are left out. ``stop``: once set, reading
    ends with ``KeyboardInterrupt`` at the next finished file (the run was interrupted)."""
    found = discover_files(path, options, include=include, exclude=exclude, skip_dirs=skip_dirs)
    options = replace(options, chunk_size=chunk_size)
    done = 0

    def tick(res: ExtractResult) -> None:
        nonlocal done
        if stop is not None and stop.is_set():
            raise KeyboardInterrupt("directory run interrupted")
        done += 1
        emit(progress, ProgressEvent(stage="extract", done=done, total=len(found), message=res.rel))

    cache = Path(cache_path) if cache_path else None
    if executor is None:
        files = extract_files(found, options, cache, tick)
    else:
        files = executor.extract(found, options, cache, tick)
    chunks: list[Chunk] = []
    for f in files:
        if not f.text:
            continue
        parts = f.chunks if f.chunks is not None else chunk_text(f.text, chunk_size)
        f.chunks = None
        chunks.extend(Chunk(f.rel, i, len(parts), part) for i, part in enumerate(parts))
    return ScanResult(files, chunks)


async def generate_chunk_pairs(
    chunk: Chunk, dispatcher: Dispatcher, n: int
) -> list[tuple[str, str]]:
    """Question/answer pairs for one chunk (at most ``n``), through ``dispatcher``."""
    return (await qa_for_chunk(chunk, dispatcher, n)).pairs


@dataclass
class PairsResult:
    """Pairs of every chunk (in chunk order), the chunks whose request failed, and how the
    replies went: ``replies`` is run.json's ``question_answer_replies``."""

    pairs: list[list[tuple[str, str]]]
    failed: list[dict[str, Any]]
    replies: dict[str, Any]


async def generate_pairs(chunks: Sequence[Chunk], dispatcher: Dispatcher, n: int) -> PairsResult:
    """Pairs for every chunk, concurrently through one dispatcher; failures and chunks that
    fell short (with excerpts of their replies) are recorded."""
    dispatcher.expect(len(chunks))
    results = await gather_values(qa_for_chunk(c, dispatcher, n) for c in chunks)
    outcomes: list[ChunkPairs | None] = []
    failed: list[dict[str, Any]] = []
    for chunk, result in zip(chunks, results, strict=True):
        if isinstance(result, EngineError):
            failed.append({"file": chunk.rel, "chunk": chunk.index, "error": str(result)})
            outcomes.append(None)
        else:
            outcomes.append(result)
    failed.sort(key=lambda f: (f["file"], f["chunk"]))
    done = [(c, o) for c, o in zip(chunks, outcomes, strict=True) if o is not None]
    replies = {
        "replies": sum(o.replies for _, o in done),
        "unparsed_replies": sum(o.unparsed for _, o in done),
        "follow_up_requests": sum(o.follow_ups for _, o in done),
        "short_chunks": [o.shortfall(c.rel, c.index) for c, o in done if o.short],
    }
    return PairsResult([o.pairs if o else [] for o in outcomes], failed, replies)


async def generate_all_pairs(
    chunks: Sequence[Chunk], dispatcher: Dispatcher, n: int
) -> tuple[list[list[tuple[str, str]]], list[dict[str, Any]]]:
    """``generate_pairs`` as (pairs, failed), for executors that do not report replies."""
    result = await generate_pairs(chunks, dispatcher, n)
    return result.pairs, result.failed

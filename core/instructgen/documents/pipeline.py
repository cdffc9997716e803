"""Directory to dataset: discover → extract (worker processes, cached by content hash) → chunk →
question/answer pairs per chunk through the dispatcher → optionally Self-Instruct on top."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instructgen.documents.chunking import chunk_text
from instructgen.documents.discovery import discover
from instructgen.documents.extraction import ExtractOptions, ExtractResult
from instructgen.documents.qa import ChunkPairs, qa_for_chunk
from instructgen.errors import AuthenticationError, ConfigError, EngineError
from instructgen.executor import Executor, LocalExecutor
from instructgen.limits import DEFAULT_FILE_TIMEOUT, DEFAULT_MAX_BYTES, DEFAULT_MAX_MEMORY_MB
from instructgen.outdir import claim
from instructgen.progress import ProgressCallback, ProgressEvent, emit

log = logging.getLogger("instructgen.documents")

__all__ = [
    "Chunk",
    "ScanResult",
    "agenerate_from_dir",
    "generate_all_pairs",
    "generate_chunk_pairs",
    "generate_pairs",
    "get_executor",
    "scan",
]


@dataclass(frozen=True)
class Chunk:
    rel: str
    index: int
    total: int
    text: str


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
    stop: threading.Event | None = None,
) -> ScanResult:
    """Read every file under ``path`` and chunk it; bad files are skipped with a reason.

    Limits per file: ``max_bytes`` (larger files are not read), ``timeout`` seconds and
    ``max_memory_mb`` megabytes of memory (0: none) in a worker process, which also chunks
    the text. Symbolic links leading out of ``path`` are not followed unless
    ``follow_symlinks``; ``skip_dirs`` (an output folder inside ``path``) are left out.
    ``stop``: once set, the scan ends with ``KeyboardInterrupt`` at the next finished file
    (the run was interrupted; the workers are stopped)."""
    root = Path(path)
    if not root.exists():
        raise ConfigError(f"{root}: no such file or directory")
    found = discover(
        root,
        include=include,
        exclude=exclude,
        max_bytes=max_bytes,
        follow_symlinks=follow_symlinks,
        skip_dirs=skip_dirs,
    )
    done = 0

    def tick(res: ExtractResult) -> None:
        nonlocal done
        if stop is not None and stop.is_set():
            raise KeyboardInterrupt("directory run interrupted")
        done += 1
        emit(progress, ProgressEvent(stage="extract", done=done, total=len(found), message=res.rel))

    files = (executor or LocalExecutor()).extract(
        found,
        ExtractOptions(
            workers=workers, timeout=timeout, max_memory_mb=max_memory_mb, chunk_size=chunk_size
        ),
        Path(cache_path) if cache_path else None,
        tick,
    )
    chunks: list[Chunk] = []
    for f in files:
        if not f.text:
            continue
        parts = f.chunks if f.chunks is not None else chunk_text(f.text, chunk_size)
        f.chunks = None
        chunks.extend(Chunk(f.rel, i, len(parts), part) for i, part in enumerate(parts))
    return ScanResult(files, chunks)


async def generate_chunk_pairs(chunk: Chunk, dispatcher: Any, n: int) -> list[tuple[str, str]]:
    """Question/answer pairs for one chunk (at most ``n``), through ``dispatcher``."""
    return (await qa_for_chunk(chunk, dispatcher, n)).pairs


@dataclass
class PairsResult:
    """Pairs of every chunk (in chunk order), the chunks whose request failed, and how the
    replies went: ``replies`` is run.json's ``question_answer_replies``."""

    pairs: list[list[tuple[str, str]]]
    failed: list[dict[str, Any]]
    replies: dict[str, Any]


async def generate_pairs(chunks: Sequence[Chunk], dispatcher: Any, n: int) -> PairsResult:
    """Pairs for every chunk, concurrently through one dispatcher; failures and chunks that
    fell short (with excerpts of their replies) are recorded."""
    failed: list[dict[str, Any]] = []
    dispatcher.expect(len(chunks))

    async def one(chunk: Chunk) -> ChunkPairs | None:
        try:
            return await qa_for_chunk(chunk, dispatcher, n)
        except AuthenticationError:
            raise  # a wrong key fails everything: stop at once
        except EngineError as exc:
            failed.append({"file": chunk.rel, "chunk": chunk.index, "error": str(exc)})
            return None

    outcomes = list(await asyncio.gather(*(one(c) for c in chunks)))
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
    chunks: Sequence[Chunk], dispatcher: Any, n: int
) -> tuple[list[list[tuple[str, str]]], list[dict[str, Any]]]:
    """``generate_pairs`` as (pairs, failed), for executors that do not report replies."""
    result = await generate_pairs(chunks, dispatcher, n)
    return result.pairs, result.failed


def get_executor(executor: str | Executor | None, **options: Any) -> Executor:
    """``None``/``"local"``, an executor plugin's name, or an ``Executor`` instance."""
    if isinstance(executor, Executor):
        return executor
    if executor in (None, "local"):
        return LocalExecutor(**options)
    from instructgen import plugins

    return plugins.executors().get(executor)(**options)


async def agenerate_from_dir(
    path: str | Path,
    engine: Any,
    *,
    use_self_instruct: bool = False,
    chunk_size: int = 8000,
    num_samples_per_chunk: int = 5,
    num_instructions: int = 10,
    num_instructions_for_finetuning: int = 5,
    out: str | Path | None = None,
    cache: bool | str | Path = True,
    config: Any = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    workers: int = 2,
    timeout: float = DEFAULT_FILE_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_memory_mb: int = DEFAULT_MAX_MEMORY_MB,
    seed: int = 42,
    progress: ProgressCallback | None = None,
    executor: str | Executor | None = None,
    executor_options: dict[str, Any] | None = None,
    follow_symlinks: bool = False,
    **self_instruct_params: Any,
) -> Any:
    """The seed's ``generate_dataset_from_dir``: returns an ``InstructionDataset`` whose
    ``run_report`` lists files read, files skipped (with reasons), requests, tokens and cost.

    ``cache``: ``True`` keeps the caches in ``out`` (or the user cache folder), a path names
    the folder, ``False`` disables them. ``executor``: where extraction and generation run
    (``"local"``, or an executor plugin such as ``"ray"`` with ``executor_options``).
    ``follow_symlinks``: also read files that symbolic links lead to outside ``path``.
    ``out`` must be new, empty or instructgen's own; inside ``path`` it is not read.
    """
    from instructgen.cache import Cache
    from instructgen.dataset import InstructionDataset, default_cache_path
    from instructgen.dispatch import Dispatcher
    from instructgen.engines import create_engine
    from instructgen.selfinstruct import run_self_instruct
    from instructgen.tasks import Instance, SeedTask

    if num_samples_per_chunk < 1:
        raise ConfigError("num_samples_per_chunk must be at least 1")
    if use_self_instruct:
        from instructgen.dataset import check_self_instruct_size

        check_self_instruct_size(
            num_instructions_for_finetuning, num_instructions, self_instruct_params
        )
    started = time.monotonic()
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        claim(out_dir, what="output folder")  # a folder of other files: refused, untouched
    if cache is False:
        cache_dir = None
    elif cache is True:
        cache_dir = out_dir if out_dir is not None else default_cache_path().parent
    else:
        cache_dir = Path(cache)
    eng = create_engine(engine)
    runner = get_executor(executor, **(executor_options or {}))
    try:
        stop = threading.Event()  # Ctrl-C / SIGTERM: the reading thread ends at its next file
        scanning = asyncio.to_thread(
            scan,
            path,
            chunk_size=chunk_size,
            include=include,
            exclude=exclude,
            workers=workers,
            timeout=timeout,
            max_bytes=max_bytes,
            max_memory_mb=max_memory_mb,
            cache_path=cache_dir / "extract-cache.sqlite3" if cache_dir else None,
            progress=progress,
            executor=runner,
            follow_symlinks=follow_symlinks,
            skip_dirs=[out_dir] if out_dir is not None else [],
            stop=stop,
        )
        try:
            scanned = await scanning
        except BaseException:
            stop.set()
            raise
        generated = await runner.generate(
            scanned.chunks,
            eng,
            n=num_samples_per_chunk,
            config=config,
            cache_dir=cache_dir,
            progress=progress,
        )
    finally:
        runner.close()
    rows: list[dict[str, Any]] = [
        {
            "instruction": q,
            "text": "",
            "target": a,
            "engine": eng.name,
            "model": eng.model,
            "seed_task_ids": [],
            "is_classification": False,
            "source": chunk.rel,
        }
        for chunk, pairs in zip(scanned.chunks, generated.pairs, strict=True)
        for q, a in pairs
    ]
    report: dict[str, Any] = {
        "pipeline": "from-dir",
        "root": str(path),
        "engine": eng.name,
        "model": eng.model,
        "executor": runner.name,
        "chunk_size": chunk_size,
        "num_samples_per_chunk": num_samples_per_chunk,
        "limits": {
            "file_timeout_s": timeout,
            "max_file_bytes": max_bytes,
            "max_memory_mb": max_memory_mb,
            "workers": workers,
        },
        "follow_symlinks": follow_symlinks,
        "extraction": scanned.summary(),
        "files": [f.to_dict() for f in scanned.files],
        "skipped_files": scanned.skipped,
        "question_answer_pairs": len(rows),
        "failed_chunks": generated.failed,
        "question_answer_replies": generated.replies,
        "requests": generated.stats,
    }
    if use_self_instruct and rows:
        tasks = [
            SeedTask(
                id=f"qa_{i}",
                instruction=r["instruction"],
                instances=(Instance("", r["target"]),),
                name=r["source"],
            )
            for i, r in enumerate(rows)
        ]
        store = Cache(cache_dir / "cache.sqlite3") if cache_dir is not None else None
        try:
            async with Dispatcher(eng, config=config, cache=store, progress=progress) as d:
                result = await run_self_instruct(
                    tasks,
                    d,
                    num_instructions_for_finetuning=num_instructions_for_finetuning,
                    num_instructions=num_instructions,
                    seed=seed,
                    progress=progress,
                    source="self-instruct:from-dir",
                    **self_instruct_params,
                )
                report["self_instruct"] = {**result.report, "requests": d.stats.to_dict()}
        finally:
            if store is not None:
                store.close()
        rows = result.rows
    report["timings"] = {"total_s": round(time.monotonic() - started, 3)}
    return InstructionDataset(rows, report)

"""Directory to dataset: discover → extract (worker processes, cached by content hash) → chunk →
question/answer pairs per chunk through the dispatcher → optionally Self-Instruct on top."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instructgen.documents.chunking import chunk_text
from instructgen.documents.discovery import DEFAULT_MAX_BYTES, discover
from instructgen.documents.extraction import (
    ExtractCache,
    ExtractOptions,
    ExtractResult,
    extract_many,
)
from instructgen.documents.qa import parse_qa, qa_request
from instructgen.engines import Completion
from instructgen.errors import AuthenticationError, ConfigError, EngineError
from instructgen.progress import ProgressCallback, ProgressEvent, emit

log = logging.getLogger("instructgen.documents")

__all__ = ["Chunk", "ScanResult", "agenerate_from_dir", "generate_chunk_pairs", "scan"]


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
    timeout: float = 300.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    cache_path: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> ScanResult:
    """Read every file under ``path`` and chunk it; bad files are skipped with a reason."""
    root = Path(path)
    if not root.exists():
        raise ConfigError(f"{root}: no such file or directory")
    found = discover(root, include=include, exclude=exclude, max_bytes=max_bytes)
    cache = ExtractCache(cache_path) if cache_path else None
    done = 0

    def tick(res: ExtractResult) -> None:
        nonlocal done
        done += 1
        emit(progress, ProgressEvent(stage="extract", done=done, total=len(found), message=res.rel))

    try:
        files = extract_many(
            found,
            options=ExtractOptions(workers=workers, timeout=timeout),
            cache=cache,
            on_result=tick,
        )
    finally:
        if cache is not None:
            cache.close()
    chunks: list[Chunk] = []
    for f in files:
        if not f.text:
            continue
        parts = chunk_text(f.text, chunk_size)
        chunks.extend(Chunk(f.rel, i, len(parts), part) for i, part in enumerate(parts))
    return ScanResult(files, chunks)


async def generate_chunk_pairs(chunk: Chunk, dispatcher: Any, n: int) -> list[tuple[str, str]]:
    """Question/answer pairs for one chunk (at most ``n``), through ``dispatcher``."""
    chat = dispatcher.engine.kind == "chat"
    req = qa_request(
        chunk.text, rel=chunk.rel, index=chunk.index, total=chunk.total, n=n, chat=chat
    )
    completion: Completion = await dispatcher.complete(req)
    if completion.finish_reasons and completion.finish_reasons[0] == "length":
        pairs = parse_qa(completion.text, completion_prefix=not chat)[:-1]  # last may be cut
    else:
        pairs = parse_qa(completion.text, completion_prefix=not chat)
    return pairs[:n]


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
    timeout: float = 300.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    seed: int = 42,
    progress: ProgressCallback | None = None,
    **self_instruct_params: Any,
) -> Any:
    """The seed's ``generate_dataset_from_dir``: returns an ``InstructionDataset`` whose
    ``run_report`` lists files read, files skipped (with reasons), requests, tokens and cost."""
    from instructgen.cache import Cache
    from instructgen.dataset import InstructionDataset, default_cache_path
    from instructgen.dispatch import Dispatcher
    from instructgen.engines import create_engine
    from instructgen.selfinstruct import run_self_instruct
    from instructgen.tasks import Instance, SeedTask

    if num_samples_per_chunk < 1:
        raise ConfigError("num_samples_per_chunk must be at least 1")
    started = time.monotonic()
    out_dir = Path(out) if out is not None else None
    extract_cache = (
        out_dir / "extract-cache.sqlite3"
        if out_dir is not None
        else default_cache_path().with_name("extracted.sqlite3")
    )
    scanned = await asyncio.to_thread(
        scan,
        path,
        chunk_size=chunk_size,
        include=include,
        exclude=exclude,
        workers=workers,
        timeout=timeout,
        max_bytes=max_bytes,
        cache_path=extract_cache if cache is not False else None,
        progress=progress,
    )
    eng = create_engine(engine)
    if cache is False:
        store = None
    elif cache is True:
        store = Cache(out_dir / "cache.sqlite3" if out_dir is not None else default_cache_path())
    else:
        store = Cache(cache)
    pairs_by_chunk: list[list[tuple[str, str]]] = []
    failed: list[dict[str, Any]] = []
    try:
        async with Dispatcher(
            eng, config=config, cache=store, progress=progress, stage="questions"
        ) as d:
            d.expect(len(scanned.chunks))

            async def one(chunk: Chunk) -> list[tuple[str, str]]:
                try:
                    return await generate_chunk_pairs(chunk, d, num_samples_per_chunk)
                except AuthenticationError:
                    raise
                except EngineError as exc:
                    failed.append({"file": chunk.rel, "chunk": chunk.index, "error": str(exc)})
                    return []

            pairs_by_chunk = list(await asyncio.gather(*(one(c) for c in scanned.chunks)))
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
                for chunk, pairs in zip(scanned.chunks, pairs_by_chunk, strict=True)
                for q, a in pairs
            ]
            report: dict[str, Any] = {
                "pipeline": "from-dir",
                "root": str(path),
                "engine": eng.name,
                "model": eng.model,
                "chunk_size": chunk_size,
                "num_samples_per_chunk": num_samples_per_chunk,
                "extraction": scanned.summary(),
                "files": [f.to_dict() for f in scanned.files],
                "skipped_files": scanned.skipped,
                "question_answer_pairs": len(rows),
                "failed_chunks": failed,
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
                report["self_instruct"] = result.report
                rows = result.rows
            report["requests"] = d.stats.to_dict()
    finally:
        if store is not None:
            store.close()
    report["timings"] = {"total_s": round(time.monotonic() - started, 3)}
    return InstructionDataset(rows, report)

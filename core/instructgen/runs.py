"""Runs: the one place that wires an engine, the caches, a dispatcher, an executor and a pipeline
together for one run, and hands back rows and a report.

Everything below this floor takes what it needs as arguments (a dispatcher, a cache, an
executor); everything above it (``InstructionDataset``, the CLI) calls these functions. The
``local`` executor is registered here, beside the directory run that every executor feeds.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import instructgen.plugins as plugins
from instructgen.cache import Cache
from instructgen.dispatch import DispatchConfig, Dispatcher
from instructgen.documents.discovery import discover_files
from instructgen.documents.extraction import read_files
from instructgen.documents.stream import RowSpill, Tally, stream_chunks, stream_pairs
from instructgen.documents.types import Chunk, ExtractOptions, ExtractResult
from instructgen.engine_contract import Engine
from instructgen.engines import create_engine
from instructgen.errors import ConfigError
from instructgen.executor import Executor, ReadJob
from instructgen.filter import Filter
from instructgen.limits import check_dataset_size
from instructgen.outdir import claim, remove_workdir, user_cache_dir
from instructgen.progress import ProgressCallback, ProgressEvent, emit
from instructgen.selfinstruct.options import SelfInstructOptions
from instructgen.selfinstruct.pipeline import (
    SelfInstructResult,
    build_filters,
    run_self_instruct,
)
from instructgen.tasks import Instance, SeedTask, load_tasks

__all__ = [
    "LocalExecutor",
    "RunResult",
    "default_cache_path",
    "get_executor",
    "open_cache",
    "run_from_dir",
    "run_self_instruct_tasks",
]


@dataclass
class RunResult:
    """What a run produced: dataset rows (see ``InstructionDataset``) and the run report.
    A streamed directory run leaves its rows on disk instead: ``spill`` (read in dataset
    order by iterating it) in the folder ``workdir``, which the caller removes."""

    rows: list[dict[str, Any]]
    report: dict[str, Any]
    spill: RowSpill | None = None
    workdir: Path | None = None


def default_cache_path() -> Path:
    """The user's response cache: ``$XDG_CACHE_HOME/instructgen/responses.sqlite3``, shared by
    every process of the user (``outdir.user_cache_dir``)."""
    return user_cache_dir() / "responses.sqlite3"


def open_cache(cache: bool | str | Path | None) -> Cache | None:
    """``True``: the user cache; a path: that file; ``False``/``None``: no cache."""
    if cache is False or cache is None:
        return None
    return Cache(default_cache_path() if cache is True else Path(cache))


# -- executors --------------------------------------------------------------------------------


class LocalExecutor(Executor):
    """This machine: files read in extraction worker processes (``read_files``), as many as
    the run's ``workers`` limit allows."""

    name = "local"

    def read(
        self, jobs: Sequence[ReadJob], options: ExtractOptions, stop: threading.Event
    ) -> Iterator[tuple[int, ExtractResult]]:
        return read_files(jobs, options, stop)


plugins.register_builtin("executors", "local", LocalExecutor)


def prepared_engine(engine: str | Engine) -> Engine:
    """The engine, with the modules its first request imports (its SDK, ``requires``) already
    imported: called in a worker thread, so that a multi-second import never runs on the
    caller's event loop."""
    eng = create_engine(engine)
    eng.warm_up()
    return eng


def get_executor(
    executor: str | Executor | None, options: Mapping[str, Any] | None = None
) -> Executor:
    """``None``/``"local"``, an executor plugin's name, or an ``Executor`` instance."""
    if isinstance(executor, Executor):
        return executor
    if executor in (None, "local"):
        return LocalExecutor(**(options or {}))
    return plugins.executors().get(executor)(**(options or {}))


# -- Self-Instruct ------------------------------------------------------------------------------


async def _self_instruct(
    seeds: Sequence[SeedTask],
    engine: Engine,
    store: Cache | None,
    *,
    config: DispatchConfig | None,
    progress: ProgressCallback | None,
    num_instructions_for_finetuning: int,
    num_instructions: int,
    seed: int,
    filters: Sequence[Filter] | None = None,
    options: SelfInstructOptions | None = None,
    source: str = "self-instruct",
) -> tuple[SelfInstructResult, dict[str, Any]]:
    """Self-Instruct over ``seeds`` through one dispatcher with the response cache ``store``
    (closed at the end); returns the result and the dispatcher's request statistics."""
    try:
        async with Dispatcher(engine, config=config, cache=store, progress=progress) as d:
            result = await run_self_instruct(
                seeds,
                d,
                num_instructions_for_finetuning=num_instructions_for_finetuning,
                num_instructions=num_instructions,
                seed=seed,
                filters=filters,
                progress=progress,
                source=source,
                **(options or SelfInstructOptions()).as_kwargs(),
            )
            return result, d.stats.to_dict()
    finally:
        if store is not None:
            store.close()


async def run_self_instruct_tasks(
    tasks: str | Path | Sequence[SeedTask | Mapping[str, Any]],
    engine: str | Engine,
    *,
    num_instructions_for_finetuning: int = 5,
    num_instructions: int = 10,
    cache: bool | str | Path = True,
    config: DispatchConfig | None = None,
    progress: ProgressCallback | None = None,
    seed: int = 42,
    filters: Sequence[str | Filter] | None = None,
    filter_options: Mapping[str, Mapping[str, Any]] | None = None,
    options: SelfInstructOptions | None = None,
) -> RunResult:
    """Self-Instruct from a tasks.jsonl file (or seed tasks): see
    ``InstructionDataset.agenerate_dataset``.

    Reading the task file, loading plugins, building the filters and importing the engine's
    SDK happen in a worker thread: an embedding service's event loop is never held by them."""
    check_dataset_size(  # a size the cap can never reach: ConfigError before anything is sent
        num_instructions_for_finetuning,
        num_instructions,
        (options or SelfInstructOptions()).max_instances_per_task,
    )

    def prepare() -> tuple[list[SeedTask], Engine, list[Filter]]:
        loaded = (
            list(tasks)
            if isinstance(tasks, Sequence) and not isinstance(tasks, str)
            else load_tasks(tasks)
        )
        seeds = [t if isinstance(t, SeedTask) else SeedTask.from_dict(dict(t)) for t in loaded]
        eng = prepared_engine(engine)
        return seeds, eng, build_filters(filters, filter_options)

    seeds, eng, chosen = await asyncio.to_thread(prepare)
    result, stats = await _self_instruct(
        seeds,
        eng,
        open_cache(cache),
        config=config,
        progress=progress,
        num_instructions_for_finetuning=num_instructions_for_finetuning,
        num_instructions=num_instructions,
        seed=seed,
        filters=chosen,
        options=options,
    )
    report = {
        **result.report,
        "engine": eng.name,
        "model": eng.model,
        "filters": [f.name for f in chosen],
        "requests": stats,
    }
    return RunResult(result.rows, report)


# -- a directory of documents -------------------------------------------------------------------


async def run_from_dir(
    path: str | Path,
    engine: str | Engine,
    *,
    use_self_instruct: bool = False,
    chunk_size: int = 8000,
    num_samples_per_chunk: int = 5,
    num_instructions: int = 10,
    num_instructions_for_finetuning: int = 5,
    out: str | Path | None = None,
    cache: bool | str | Path = True,
    config: DispatchConfig | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    limits: ExtractOptions | None = None,
    seed: int = 42,
    progress: ProgressCallback | None = None,
    executor: str | Executor | None = None,
    executor_options: Mapping[str, Any] | None = None,
    self_instruct: SelfInstructOptions | None = None,
    filters: Sequence[str | Filter] | None = None,
    filter_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> RunResult:
    """A directory of documents → question/answer pairs (and optionally Self-Instruct): see
    ``InstructionDataset.agenerate_dataset_from_dir``."""
    if num_samples_per_chunk < 1:
        raise ConfigError("num_samples_per_chunk must be at least 1")
    if not use_self_instruct:
        unused = [
            name
            for name, value in (
                ("self_instruct", self_instruct),
                ("filters", filters),
                ("filter_options", filter_options),
            )
            if value is not None
        ]
        if unused:
            raise ConfigError(
                f"{', '.join(unused)}: used only with use_self_instruct=True; pass "
                f"use_self_instruct=True or leave {'it' if len(unused) == 1 else 'them'} out"
            )
    else:
        check_dataset_size(
            num_instructions_for_finetuning,
            num_instructions,
            (self_instruct or SelfInstructOptions()).max_instances_per_task,
        )
    # plugins load off the event loop; an unknown filter name raises before anything is made
    chosen = (
        await asyncio.to_thread(build_filters, filters, filter_options) if use_self_instruct else []
    )
    limits = limits or ExtractOptions()
    started = time.monotonic()
    out_dir = Path(out) if out is not None else None
    # the engine and the executor first: a missing key or an unreachable cluster leaves no
    # output folder behind
    eng, runner = await asyncio.to_thread(
        lambda: (prepared_engine(engine), get_executor(executor, executor_options))
    )
    try:
        if out_dir is not None:
            claim(out_dir, what="output folder")  # a folder of other files: refused, untouched
    except BaseException:
        runner.close()
        raise
    if cache is False:
        cache_dir = None
    elif cache is True:
        cache_dir = out_dir if out_dir is not None else default_cache_path().parent
    else:
        cache_dir = Path(cache)

    def to_rows(chunk: Chunk, pairs: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        return [
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
        "limits": limits.to_report(),
    }
    rows: list[dict[str, Any]] = []
    try:
        work = _workdir(out_dir)
        rows_on_disk = RowSpill(work / "rows.jsonl")
        try:
            tally, failed, replies, stats = await _stream_dir(
                path,
                eng,
                runner,
                limits,
                rows_on_disk,
                to_rows,
                chunk_size=chunk_size,
                n=num_samples_per_chunk,
                include=include,
                exclude=exclude,
                skip_dirs=[out_dir] if out_dir is not None else [],
                cache_dir=cache_dir,
                config=config,
                progress=progress,
            )
        except BaseException:
            rows_on_disk.close()
            remove_workdir(work)
            raise
    finally:
        runner.close()
    report.update(
        extraction=tally.summary(),
        files=tally.files,
        skipped_files=tally.skipped,
        question_answer_pairs=len(rows_on_disk),
        failed_chunks=failed,
        question_answer_replies=replies,
        requests=stats,
    )
    spill: RowSpill | None = rows_on_disk
    workdir: Path | None = work
    if use_self_instruct and len(rows_on_disk):
        rows = list(rows_on_disk)  # the pairs become seed tasks, which Self-Instruct holds anyway
        rows_on_disk.close()
        remove_workdir(work)
        spill = workdir = None
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
        result, stats = await _self_instruct(
            tasks,
            eng,
            Cache(cache_dir / "cache.sqlite3") if cache_dir is not None else None,
            config=config,
            progress=progress,
            num_instructions_for_finetuning=num_instructions_for_finetuning,
            num_instructions=num_instructions,
            seed=seed,
            filters=chosen,
            options=self_instruct,
            source="self-instruct:from-dir",
        )
        report["self_instruct"] = {
            **result.report,
            "filters": [f.name for f in chosen],
            "requests": stats,
        }
        rows = result.rows
    report["timings"] = {"total_s": round(time.monotonic() - started, 3)}
    if spill is not None:
        spill.close()
    return RunResult(rows, report, spill, workdir)


def _workdir(out_dir: Path | None) -> Path:
    """A new folder for a streamed run's rows (``outdir.make_workdir``): in the output folder
    when there is one, else a temporary one."""
    from instructgen.outdir import make_workdir

    return make_workdir(out_dir)


async def _stream_dir(
    path: str | Path,
    engine: Engine,
    runner: Executor,
    limits: ExtractOptions,
    spill: RowSpill,
    to_rows: Callable[[Chunk, list[tuple[str, str]]], list[dict[str, Any]]],
    *,
    chunk_size: int,
    n: int,
    include: Sequence[str],
    exclude: Sequence[str],
    skip_dirs: Sequence[Path],
    cache_dir: Path | None,
    config: DispatchConfig | None,
    progress: ProgressCallback | None,
) -> tuple[Tally, list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """A directory run as a stream (``documents.stream``), its files read by ``runner``:
    returns the files' tally, the failed chunks, how the replies went and the dispatcher's
    statistics; rows go to ``spill``."""
    found = await asyncio.to_thread(
        discover_files, path, limits, include=include, exclude=exclude, skip_dirs=skip_dirs
    )
    tally = Tally()
    loop = asyncio.get_running_loop()
    stop = threading.Event()  # set when the run ends early: extraction stops at once

    def on_loop(ev: ProgressEvent) -> None:
        # extraction events come from the extraction thread: shown from the event loop's
        # thread, like the dispatcher's, so a progress callback is never called from two
        # threads at once
        loop.call_soon_threadsafe(emit, progress, ev)

    chunks = stream_chunks(
        found,
        limits,
        cache_dir / "extract-cache.sqlite3" if cache_dir else None,
        chunk_size=chunk_size,
        tally=tally,
        progress=on_loop if progress is not None else None,
        stop=stop,
        read=runner.read,
    )
    cache = Cache(cache_dir / "cache.sqlite3") if cache_dir is not None else None
    in_flight = 2 * (config or DispatchConfig()).concurrency + 16
    try:
        async with Dispatcher(
            engine, config=config, cache=cache, progress=progress, stage="questions"
        ) as d:
            failed, replies = await stream_pairs(
                chunks, d, n, to_rows, spill, in_flight=in_flight, stop=stop
            )
            return tally, failed, replies, d.stats.to_dict()
    finally:
        if cache is not None:
            cache.close()

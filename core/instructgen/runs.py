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
from dataclasses import dataclass, field
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
from instructgen.method import (
    Method,
    MethodContext,
    MethodInput,
    MethodOptions,
    MethodResult,
    RequestEstimate,
    RunSize,
)
from instructgen.methods.context import DispatchContext
from instructgen.methods.selfinstruct import SelfInstructMethod
from instructgen.outdir import claim, remove_workdir, user_cache_dir
from instructgen.progress import ProgressCallback, ProgressEvent, emit
from instructgen.selfinstruct.options import SelfInstructOptions
from instructgen.selfinstruct.pipeline import (
    SelfInstructResult,
    build_filters,
)
from instructgen.tasks import Instance, SeedTask, load_tasks

__all__ = [
    "LocalExecutor",
    "RunResult",
    "default_cache_path",
    "get_executor",
    "get_method",
    "load_method_input",
    "open_cache",
    "run_from_dir",
    "run_method",
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
    """Self-Instruct over ``seeds``: the ``self-instruct`` method in a context with the
    response cache ``store`` (closed at the end); returns the result and the request
    statistics."""
    method = SelfInstructMethod(options or SelfInstructOptions(), source=source)
    size = RunSize(num_instructions_for_finetuning, num_instructions, seed)
    ctx = DispatchContext(
        {"instructions": engine},
        size=size,
        config=config,
        cache=store,
        filters=filters if filters is not None else build_filters(),
        progress=progress,
    )
    async with ctx:
        result = await method.run(MethodInput("tasks", tasks=tuple(seeds)), ctx)
        return SelfInstructResult(result.rows, result.report), ctx.stats()


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
    """Self-Instruct from a tasks.jsonl file (or seed tasks): the ``self-instruct`` method
    through ``run_method``; see ``InstructionDataset.agenerate_dataset``."""
    check_dataset_size(  # a size the cap can never reach: ConfigError before anything is sent
        num_instructions_for_finetuning,
        num_instructions,
        (options or SelfInstructOptions()).max_instances_per_task,
    )
    return await run_method(
        SelfInstructMethod(options or SelfInstructOptions()),
        tasks,
        engine,
        size=RunSize(num_instructions_for_finetuning, num_instructions, seed),
        input_kind=None if not isinstance(tasks, (str, Path)) else "tasks",
        cache=cache,
        config=config,
        progress=progress,
        filters=filters,
        filter_options=filter_options,
    )


# -- any method ---------------------------------------------------------------------------------


def get_method(
    method: str | Method | type[Method],
    options: MethodOptions | Mapping[str, Any] | None = None,
) -> Method:
    """A method instance: by registered name (``UnknownNameError``, exit 2, lists them), a
    ``Method`` subclass, or an instance (then ``options`` must be ``None``)."""
    if isinstance(method, Method):
        if options:
            raise ConfigError("method options go to the method's constructor, not beside it")
        return method
    cls = plugins.methods().get(method) if isinstance(method, str) else method
    return cls(options)


def _read_instructions(path: Path) -> list[str]:
    """A JSONL file of ``{"instruction": ...}`` lines."""
    import json

    out: list[str] = []
    with path.open(encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from None
            text = obj.get("instruction") if isinstance(obj, dict) else None
            if not isinstance(text, str) or not text.strip():
                raise ConfigError(
                    f"{path}:{lineno}: instruction: expected a non-empty string "
                    '(one {"instruction": "..."} object a line)'
                )
            out.append(text.strip())
    if not out:
        raise ConfigError(f'{path}: no instructions (one {{"instruction": ...}} a line)')
    return out


def _first_object(path: Path) -> dict[str, Any] | None:
    import json

    with path.open(encoding="utf-8-sig") as fh:
        for line in fh:
            if line.strip():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    return None
                return obj if isinstance(obj, dict) else None
    return None


def load_method_input(
    source: str | Path | MethodInput | Sequence[SeedTask | Mapping[str, Any]],
    kind: str | None = None,
) -> MethodInput:
    """The input a method reads: seed tasks given in Python; a folder (a saved dataset when it
    holds ``metadata.json`` and ``data/``, else documents); a JSONL file — seed tasks when its
    lines have ``instances``, else instructions. ``kind`` forces one of ``INPUT_KINDS``."""
    if isinstance(source, MethodInput):
        return source
    if isinstance(source, Sequence) and not isinstance(source, str):
        tasks = [t if isinstance(t, SeedTask) else SeedTask.from_dict(dict(t)) for t in source]
        return MethodInput("tasks", tasks=tuple(tasks))
    path = Path(source)
    if kind is None:
        if path.is_dir():
            saved = (path / "metadata.json").is_file() and (path / "data").is_dir()
            kind = "dataset" if saved else "documents"
        elif path.is_file():
            first = _first_object(path)
            kind = "instructions" if first is not None and "instances" not in first else "tasks"
        else:
            kind = "tasks"  # load_tasks says the file is missing, in its words
    if kind == "tasks":
        return MethodInput("tasks", path, tasks=tuple(load_tasks(path)))
    if kind == "instructions":
        return MethodInput("instructions", path, seed_instructions=tuple(_read_instructions(path)))
    if kind == "dataset":
        return MethodInput("dataset", path, rows=tuple(_load_saved_rows(path)))
    if kind == "documents":
        if not path.is_dir():
            raise ConfigError(f"{path}: not a folder of documents")
        return MethodInput("documents", path)
    raise ConfigError(
        f"unknown input kind {kind!r}; one of tasks, documents, dataset, instructions"
    )


def _load_saved_rows(path: Path) -> list[dict[str, Any]]:
    """A saved dataset's rows (``InstructionDataset.save``), read without the front door."""
    import json

    meta_path = path / "metadata.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{meta_path}: not a saved instructgen dataset ({exc})") from None
    if meta.get("format") != "instructgen-dataset":
        raise ConfigError(f"{meta_path}: not an instructgen dataset")
    if meta.get("rows") == 0:
        return []
    from datasets import load_from_disk
    from datasets.utils import disable_progress_bars

    disable_progress_bars()
    rows: list[dict[str, Any]] = load_from_disk(str(path / "data")).to_list()
    return rows


async def run_method(
    method: str | Method | type[Method],
    source: str | Path | MethodInput | Sequence[SeedTask | Mapping[str, Any]],
    engine: str | Engine | Mapping[str, str | Engine],
    *,
    size: RunSize | None = None,
    method_options: MethodOptions | Mapping[str, Any] | None = None,
    input_kind: str | None = None,
    cache: bool | str | Path = True,
    config: DispatchConfig | None = None,
    progress: ProgressCallback | None = None,
    filters: Sequence[str | Filter] | None = None,
    filter_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> RunResult:
    """Any registered method over its input: the one path every method runs through.

    ``engine``: one engine for every role, or ``{"instructions": ..., "answers": ...}`` (a
    role not given uses the ``instructions`` engine). Loading the input, plugins, filters and
    the engines' SDKs happens in a worker thread."""
    size = size or RunSize()
    if size.n < 1 or size.num_instructions < 1:
        raise ConfigError("num_instructions and num_instructions_for_finetuning must be >= 1")

    def prepare() -> tuple[Method, MethodInput, dict[str, Engine], list[Filter]]:
        m = get_method(method, method_options)
        m.check_size(size)
        loaded = load_method_input(source, input_kind)
        m.check_input(loaded)
        given = engine if isinstance(engine, Mapping) else {"instructions": engine}
        if "instructions" not in given:
            raise ConfigError(
                "engine: name the 'instructions' engine (other roles fall back to it)"
            )
        unknown = sorted(set(given) - {"instructions", *m.roles})
        if unknown:
            raise ConfigError(
                f"method {m.name!r} sends no requests for role(s) {', '.join(unknown)}; "
                f"its roles: {', '.join(m.roles)}"
            )
        built: dict[int, Engine] = {}
        engines: dict[str, Engine] = {}
        for role, spec in given.items():
            key = id(spec)
            if key not in built:
                built[key] = prepared_engine(spec)
            engines[role] = built[key]
        merged = {k: dict(v) for k, v in m.filter_options.items()}
        for k, v in (filter_options or {}).items():
            merged.setdefault(k, {}).update(v)
        return m, loaded, engines, build_filters(filters, merged)

    m, loaded, engines, chosen = await asyncio.to_thread(prepare)
    if isinstance(m, SelfInstructMethod) and loaded.kind == "tasks":
        # the seed's generate_dataset: the same report as always
        result, stats = await _self_instruct(
            loaded.tasks,
            engines["instructions"],
            open_cache(cache),
            config=config,
            progress=progress,
            num_instructions_for_finetuning=size.n,
            num_instructions=size.num_instructions,
            seed=size.seed,
            filters=chosen,
            options=m.options,
        )
        si_report = {
            "method": m.name,
            **result.report,
            "engine": engines["instructions"].name,
            "model": engines["instructions"].model,
            "filters": [f.name for f in chosen],
            "requests": stats,
        }
        return RunResult(result.rows, si_report)
    own_cache = isinstance(m, DocumentQAMethod)  # the directory pipeline opens its caches
    ctx = DispatchContext(
        engines,
        size=size,
        config=config,
        cache=None if own_cache else open_cache(cache),
        filters=chosen,
        progress=progress,
    )
    ctx.cache_location = cache
    started = time.monotonic()
    async with ctx:
        out = await m.run(loaded, ctx)
        stats = ctx.stats()
    main = engines["instructions"]
    # A thread: tens of thousands of rows would hold the event loop for tens of ms.
    rows = await asyncio.to_thread(
        lambda: [
            {"engine": main.name, "model": main.model, "source": m.name, **r} for r in out.rows
        ]
    )
    import dataclasses

    report: dict[str, Any] = {
        "pipeline": m.name,
        "method": m.name,
        "method_options": _jsonable(dataclasses.asdict(m.options)),
        "input": {"kind": loaded.kind, "path": str(loaded.path) if loaded.path else None},
        "requested": {
            "num_instructions_for_finetuning": size.n,
            "num_instructions": size.num_instructions,
            "seed": size.seed,
        },
        "examples": len(rows),
        **out.report,
        "engine": main.name,
        "model": main.model,
        "engines": {role: f"{e.name}:{e.model}" for role, e in engines.items()},
        "requests": stats,
    }
    if "filter_drops" not in out.report:
        report.update(ctx.filter_report())
    else:
        report.setdefault("filters", [f.name for f in chosen])
    report.setdefault("timings", {})
    report["timings"] = {
        **report["timings"],
        "filters_s": round(ctx.filter_s, 3),
        "total_s": round(time.monotonic() - started, 3),
    }
    return RunResult(rows, report)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


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


@dataclass(frozen=True)
class DocumentQAOptions(MethodOptions):
    chunk_size: int = field(default=8000, metadata={"help": "characters per chunk"})
    samples_per_chunk: int = field(
        default=5, metadata={"help": "question/answer pairs asked for per chunk"}
    )

    def __post_init__(self) -> None:
        if self.chunk_size < 1 or self.samples_per_chunk < 1:
            raise ValueError("chunk_size and samples_per_chunk must be at least 1")


class DocumentQAMethod(Method):
    """Document Q/A as a method: the directory pipeline (``run_from_dir`` on the local
    executor). Defined and registered here, not in ``methods/``, because that pipeline's
    executors are wired on this floor. ``instructgen from-dir`` is its front door with every
    extraction flag; ``generate DIR --method document-qa`` runs it with their defaults."""

    name = "document-qa"
    title = (
        "Read a folder of documents (25 formats), cut it into chunks and ask for "
        "question/answer pairs about each chunk"
    )
    paper = "xTuring generate_dataset_from_dir (Stochastic AI 2023); no paper"
    url = "https://github.com/stochasticai/xTuring"
    inputs = ("documents",)
    roles = ("instructions",)
    Options = DocumentQAOptions
    requests_per_example = 0.2  # one request per chunk, 5 pairs asked for by default

    def estimate(self, source: MethodInput, size: RunSize, *, chat: bool) -> list[RequestEstimate]:
        from instructgen.documents.qa import qa_request

        assert source.path is not None
        found = discover_files(source.path, ExtractOptions())
        chars = sum(f.size for f in found)
        chunks = max(1, -(-chars // self.options.chunk_size))
        req = qa_request(
            "x" * min(chars, self.options.chunk_size),
            rel="document.txt",
            index=1,
            total=chunks,
            n=self.options.samples_per_chunk,
            chat=chat,
        )
        return [RequestEstimate("questions", req, chunks, batchable=True, reply_tokens=300)]

    async def run(self, source: MethodInput, ctx: MethodContext) -> MethodResult:
        if not isinstance(ctx, DispatchContext):
            raise TypeError("document-qa runs on the core's DispatchContext")
        assert source.path is not None
        where = getattr(ctx, "cache_location", True)  # the run's cache file, True or False
        cache: bool | Path = Path(where).parent if isinstance(where, (str, Path)) else where
        result = await run_from_dir(
            source.path,
            ctx.engine("instructions"),
            chunk_size=self.options.chunk_size,
            num_samples_per_chunk=self.options.samples_per_chunk,
            cache=cache,
            config=ctx.config,
            progress=ctx.progress,
        )
        rows = list(result.spill) if result.spill is not None else result.rows
        if result.spill is not None:
            result.spill.close()
        if result.workdir is not None:
            remove_workdir(result.workdir)
        n = ctx.size.n
        report = {**result.report, "pairs_made": len(rows)}
        return MethodResult(rows[:n] if n else rows, report)


plugins.register_builtin("methods", DocumentQAMethod.name, DocumentQAMethod)


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

"""Runs: the one place that wires an engine, the caches, a dispatcher, an executor and a pipeline
together for one run, and hands back rows and a report.

Everything below this floor takes what it needs as arguments (a dispatcher, a cache, an
executor); everything above it (``InstructionDataset``, the CLI) calls these functions. The
``local`` executor is registered here, beside the directory run that every executor feeds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import instructgen.plugins as plugins
from instructgen.cache import Cache
from instructgen.dispatch import DispatchConfig, Dispatcher, with_batch
from instructgen.documents.discovery import discover_files
from instructgen.documents.stream import DirRunOptions, RowSpill, Tally, read_files, stream_dir
from instructgen.documents.types import Chunk, ExtractOptions, ExtractResult
from instructgen.engine_contract import Engine
from instructgen.engines import create_engine
from instructgen.errors import ConfigError
from instructgen.executor import Executor, ReadJob
from instructgen.filter import Filter, RowJudge
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
from instructgen.methods.judging import Judging
from instructgen.methods.selfinstruct import SelfInstructMethod
from instructgen.outdir import claim, remove_workdir, user_cache_dir
from instructgen.progress import ProgressCallback
from instructgen.selfinstruct.options import SelfInstructOptions
from instructgen.selfinstruct.pipeline import (
    SelfInstructResult,
    build_filters,
)
from instructgen.tasks import Instance, SeedTask, load_tasks

__all__ = [
    "DirRunOptions",
    "LocalExecutor",
    "RunResult",
    "cache_file",
    "cache_folder",
    "default_cache_path",
    "get_executor",
    "get_method",
    "load_method_input",
    "open_cache",
    "response_limits",
    "run_from_dir",
    "run_judge",
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


CACHE_FILE = "cache.sqlite3"
"""The response cache's file in a run's cache folder."""

_FILE_SUFFIXES = (".sqlite3", ".sqlite", ".db")


def _names_a_file(path: Path) -> bool:
    return path.is_file() or (not path.is_dir() and path.suffix in _FILE_SUFFIXES)


def cache_folder(cache: bool | str | Path | None, out: Path | None) -> Path | None:
    """A directory run's cache folder: ``True``: ``out`` (the user cache folder without it); a
    path: that folder; ``False``/``None``: none. A path naming a file (the form
    ``generate_dataset`` once took) is a ``ConfigError`` that says what to pass."""
    if cache is False or cache is None:
        return None
    if cache is True:
        return out if out is not None else default_cache_path().parent
    path = Path(cache)
    if _names_a_file(path):
        raise ConfigError(
            f"cache={str(path)!r}: names a folder (the run keeps {CACHE_FILE} and "
            f"extract-cache.sqlite3 in it), not a file; pass cache={str(path.parent)!r}"
        )
    return path


def cache_file(cache: bool | str | Path | None) -> Path | None:
    """The response cache of a run: ``True``: the user cache (``default_cache_path``); a path:
    the folder that holds it (``FOLDER/cache.sqlite3``); ``False``/``None``: none. A path that
    names a file is still read as that file, with a ``DeprecationWarning``: ``cache`` names a
    folder, as for directory runs."""
    if cache is False or cache is None:
        return None
    if cache is True:
        return default_cache_path()
    path = Path(cache)
    if _names_a_file(path):
        import warnings

        warnings.warn(
            f"cache={str(path)!r} names a file; cache names the folder that holds the run's "
            f"cache ({CACHE_FILE}), as for directory runs: the file is used this time",
            DeprecationWarning,
            stacklevel=4,
        )
        return path
    return path / CACHE_FILE


def open_cache(cache: bool | str | Path | None) -> Cache | None:
    """The response cache ``cache_file`` names, opened; ``None`` without one."""
    file = cache_file(cache)
    return Cache(file) if file is not None else None


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
    answers: Engine | None = None,
    role_configs: Mapping[str, DispatchConfig] | None = None,
) -> tuple[SelfInstructResult, dict[str, Any]]:
    """Self-Instruct over ``seeds``: the ``self-instruct`` method in a context with the
    response cache ``store`` (closed at the end); returns the result and the request
    statistics."""
    method = SelfInstructMethod(options or SelfInstructOptions(), source=source)
    size = RunSize(num_instructions_for_finetuning, num_instructions, seed)
    ctx = DispatchContext(
        {"instructions": engine, **({"answers": answers} if answers is not None else {})},
        size=size,
        config=config,
        cache=store,
        filters=filters if filters is not None else build_filters(),
        progress=progress,
        role_configs=role_configs,
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
    response_engine: str | Engine | None = None,
    judge_engine: str | Engine | None = None,
    role_configs: Mapping[str, DispatchConfig] | None = None,
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
        response_engine=response_engine,
        judge_engine=judge_engine,
        role_configs=role_configs,
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
    response_engine: str | Engine | None = None,
    judge_engine: str | Engine | None = None,
    role_configs: Mapping[str, DispatchConfig] | None = None,
) -> RunResult:
    """Any registered method over its input: the one path every method runs through.

    ``engine``: one engine for every role, or ``{"instructions": ..., "answers": ...}`` (a
    role not given uses the ``instructions`` engine). ``response_engine``: the ``answers``
    role's engine (Self-Instruct's instances, Evol-Instruct's answers; a method without that
    role refuses it); ``judge_engine``: the ``judge`` role's (the ``llm-judge`` filter's
    ratings). ``role_configs``: an engine's own limits, by the role that names it (its
    dispatcher's concurrency, rpm, tpm; ``max_cost`` is one budget for every engine).

    A row judge among ``filters`` (``llm-judge``) rates the rows the method made, after the
    other filters, and keeps the first ``size.n`` rated at least its threshold; when it drops
    rows the method runs again for more (the answers it had are in the cache) until ``size.n``
    are kept, the method has no more to give, or the budget stops the run.

    Loading the input, plugins, filters and the engines' SDKs happens in a worker thread."""
    size = size or RunSize()
    if size.n < 1 or size.num_instructions < 1:
        raise ConfigError("num_instructions and num_instructions_for_finetuning must be >= 1")

    def prepare() -> tuple[Method, MethodInput, dict[str, Engine], list[Filter], RowJudge | None]:
        m = get_method(method, method_options)
        m.check_size(size)
        loaded = load_method_input(source, input_kind)
        m.check_input(loaded)
        given = dict(engine) if isinstance(engine, Mapping) else {"instructions": engine}
        if "instructions" not in given:
            raise ConfigError(
                "engine: name the 'instructions' engine (other roles fall back to it)"
            )
        if response_engine is not None:
            given["answers"] = response_engine
        if judge_engine is not None:
            given["judge"] = judge_engine
        chosen, judge = _split_filters(_method_filters(m, filters, filter_options))
        roles = {"instructions", *m.roles, *((judge.role,) if judge is not None else ())}
        unknown = sorted(set(given) - roles)
        if unknown:
            note = f" ({m.roles_note})" if m.roles_note else ""
            if unknown == ["answers"]:
                raise ConfigError(
                    f"method {m.name!r} takes no response engine: its roles are "
                    f"{', '.join(m.roles)}{note}"
                )
            raise ConfigError(
                f"method {m.name!r} sends no requests for role(s) {', '.join(unknown)}; its "
                f"roles: {', '.join(m.roles)}{note}"
            )
        built: dict[int, Engine] = {}
        engines: dict[str, Engine] = {}
        for role, spec in given.items():
            key = id(spec)
            if key not in built:
                built[key] = prepared_engine(spec)
            engines[role] = built[key]
        return m, loaded, engines, chosen, judge

    m, loaded, engines, chosen, judge = await asyncio.to_thread(prepare)
    own_cache = isinstance(m, DocumentQAMethod)  # the directory pipeline opens its caches
    cache_at = cache_file(cache)
    private: Path | None = None
    if judge is not None and cache_at is None:
        # A judged run asks the method again for more rows and counts on the cache to replay
        # what it sent before: without one it would pay for those requests twice. A private
        # cache for this run alone, removed at the end (never the user's).
        import tempfile

        private = Path(tempfile.mkdtemp(prefix="instructgen-judged-"))
        cache_at = private / "cache.sqlite3"
    try:
        return await _run_in_context(
            m,
            loaded,
            engines,
            chosen,
            judge,
            size,
            config,
            progress,
            role_configs,
            filters,
            filter_options,
            own_cache,
            cache_at,
        )
    finally:
        if private is not None:
            import shutil

            shutil.rmtree(private, ignore_errors=True)


async def _run_in_context(
    m: Method,
    loaded: MethodInput,
    engines: dict[str, Engine],
    chosen: list[Filter],
    judge: RowJudge | None,
    size: RunSize,
    config: DispatchConfig | None,
    progress: ProgressCallback | None,
    role_configs: Mapping[str, DispatchConfig] | None,
    filters: Sequence[str | Filter] | None,
    filter_options: Mapping[str, Mapping[str, Any]] | None,
    own_cache: bool,
    cache_at: Path | None,
) -> RunResult:
    """``run_method``'s run once its method, input, engines and cache file are settled."""
    self_instruct_tasks = isinstance(m, SelfInstructMethod) and loaded.kind == "tasks"
    ctx = DispatchContext(
        engines,
        size=size,
        config=config,
        cache=None if own_cache or cache_at is None else Cache(cache_at),
        filters=chosen,
        progress=progress,
        role_configs=role_configs,
    )
    ctx.cache_location = cache_at if cache_at is not None else False
    started = time.monotonic()
    async with ctx:
        out, judged = await _run_judged(
            m,
            loaded,
            ctx,
            size,
            judge,
            lambda: _split_filters(_method_filters(m, filters, filter_options))[0],
        )
        stats = ctx.stats()
    main = engines["instructions"]
    writer = engines.get("answers", main) if "answers" in m.roles else main
    if self_instruct_tasks:
        # the seed's generate_dataset: the same report as always
        si_report = {
            "method": m.name,
            **out.report,
            "engine": main.name,
            "model": main.model,
            "filters": [f.name for f in chosen],
            "requests": stats,
        }
        _add_roles(si_report, engines, judged, len(out.rows))
        return RunResult(out.rows, si_report)
    # A thread: tens of thousands of rows would hold the event loop for tens of ms.
    rows = await asyncio.to_thread(
        lambda: [
            {"engine": writer.name, "model": writer.model, "source": m.name, **r} for r in out.rows
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
    _add_roles(report, engines, judged, len(rows))
    report.setdefault("timings", {})
    report["timings"] = {
        **report["timings"],
        "filters_s": round(ctx.filter_s, 3),
        "total_s": round(time.monotonic() - started, 3),
    }
    return RunResult(rows, report)


MAX_JUDGED_PASSES = 10
"""How many times a judged run asks its method for more rows at most."""


def _method_filters(
    m: Method,
    filters: Sequence[str | Filter] | None,
    filter_options: Mapping[str, Mapping[str, Any]] | None,
) -> list[Filter]:
    merged = {k: dict(v) for k, v in m.filter_options.items()}
    for k, v in (filter_options or {}).items():
        merged.setdefault(k, {}).update(v)
    try:
        return build_filters(filters, merged)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"filter options: {exc}") from None


def _split_filters(chosen: Sequence[Filter]) -> tuple[list[Filter], RowJudge | None]:
    """The instruction filters, and the row judge (at most one)."""
    judges = [f for f in chosen if isinstance(f, RowJudge)]
    if len(judges) > 1:
        raise ConfigError(f"one row judge a run: {', '.join(j.name for j in judges)} were chosen")
    return [f for f in chosen if not isinstance(f, RowJudge)], (judges[0] if judges else None)


async def _run_judged(
    m: Method,
    loaded: MethodInput,
    ctx: DispatchContext,
    size: RunSize,
    judge: RowJudge | None,
    fresh_filters: Callable[[], list[Filter]],
) -> tuple[MethodResult, dict[str, Any] | None]:
    """The method's run; with a row judge, its rows judged, and the method run again for more
    (a larger size, same seed: the requests it sent before are replayed from the cache, and
    each run starts with fresh instruction filters) until ``size.n`` rows are kept."""
    out = await m.run(loaded, ctx)
    if judge is None:
        return out, None
    judging = Judging(judge, ctx)
    asked = size
    spent = {"completed": 0.0, "cached": 0.0, "cost": 0.0}  # by the ratings alone
    had = -1
    passes = 1
    while True:
        before = _paid(ctx)
        kept = await judging.select(out.rows, size.n)
        after = _paid(ctx)
        for k in spent:
            spent[k] += after[k] - before[k]
        if len(kept) >= size.n or len(out.rows) <= had or passes >= MAX_JUDGED_PASSES:
            break
        had = len(out.rows)
        asked = _grown(asked, size.n - len(kept), judging.pass_rate(), len(out.rows))
        ctx.size = asked
        ctx.filters = fresh_filters()  # stateful filters (novelty) start again with the run
        ctx.drops.clear()
        ctx.drop_examples.clear()
        out = await m.run(loaded, ctx)
        passes += 1
    ctx.size = size
    report = judging.report(
        len(kept),
        {
            "requests_completed": int(spent["completed"]),
            "requests_cached": int(spent["cached"]),
            "cost_usd": round(spent["cost"], 6),
        },
    )
    report["method_runs"] = passes
    report["asked_of_method"] = {"n": asked.n, "num_instructions": asked.num_instructions}
    if len(kept) < size.n:
        report["shortfall_reason"] = (
            f"the judge kept {len(kept)} of the {len(judging.scores)} rows it rated and the "
            "method gave no more rows"
            if len(out.rows) <= had
            else f"the judge kept {len(kept)} rows after {passes} runs of the method"
        )
    return MethodResult(kept, out.report), report


async def run_judge(
    rows: Sequence[Mapping[str, Any]],
    engine: str | Engine,
    *,
    judge: str | RowJudge = "llm-judge",
    filter_options: Mapping[str, Mapping[str, Any]] | None = None,
    cache: bool | str | Path = True,
    config: DispatchConfig | None = None,
    progress: ProgressCallback | None = None,
) -> RunResult:
    """Rate every row of a finished dataset with a row judge and keep those at or above its
    threshold (each with its ``judge_score``, in their order): the same requests as judging
    inside a run, so a run's cache answers them."""

    def prepare() -> tuple[Engine, RowJudge]:
        built = build_filters([judge], filter_options)
        chosen = built[0]
        if not isinstance(chosen, RowJudge):
            raise ConfigError(f"filter {chosen.name!r} rates no rows (not a row judge)")
        return prepared_engine(engine), chosen

    try:
        eng, j = await asyncio.to_thread(prepare)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"judge options: {exc}") from None
    started = time.monotonic()
    ctx = DispatchContext(
        {"instructions": eng, j.role: eng},
        size=RunSize(max(1, len(rows)), max(1, len(rows))),
        config=config,
        cache=open_cache(cache),
        progress=progress,
    )
    async with ctx:
        judging = Judging(j, ctx)
        kept = await judging.select([dict(r) for r in rows], len(rows))
        stats = ctx.stats()
    report = {
        "pipeline": "judge",
        "rows_in": len(rows),
        "examples": len(kept),
        "engine": eng.name,
        "model": eng.model,
        "judge": judging.report(len(kept)),
        "requests": stats,
        "timings": {"total_s": round(time.monotonic() - started, 3)},
    }
    return RunResult(kept, report)


def _paid(ctx: DispatchContext) -> dict[str, float]:
    d = ctx.dispatchers()
    return {
        "completed": sum(x.stats.completed for x in d),
        "cached": sum(x.stats.cached for x in d),
        "cost": sum(x.stats.cost for x in d),
    }


def _grown(asked: RunSize, missing: int, rate: float, made: int) -> RunSize:
    """The size to ask the method for next: enough more rows for ``missing`` kept ones at the
    judge's pass ``rate`` (a quarter more), the instruction cap grown in proportion."""
    more = math.ceil(missing / max(rate, 0.05) * 1.25) + 1
    n = max(asked.n, made) + more
    num = max(asked.num_instructions, math.ceil(asked.num_instructions * n / max(1, asked.n)))
    return RunSize(n, num, asked.seed)


def _add_roles(
    report: dict[str, Any],
    engines: Mapping[str, Engine],
    judged: dict[str, Any] | None,
    examples: int,
) -> None:
    """The engines by role (when a run has more than one) and the judge's section."""
    if len({id(e) for e in engines.values()}) > 1:
        report["engines"] = {role: f"{e.name}:{e.model}" for role, e in engines.items()}
    if judged is not None:
        report["judge"] = judged
        report["examples"] = examples
        if judged.get("shortfall_reason"):
            report["shortfall_reason"] = judged["shortfall_reason"]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


# -- a directory of documents -------------------------------------------------------------------


def response_limits(
    response: DispatchConfig | None,
    config: DispatchConfig | None,
    batch: Any,
    judge: DispatchConfig | None = None,
) -> dict[str, DispatchConfig] | None:
    """The response engine's own limits (``response``) and the judge engine's (``judge``),
    each with the run's budget and batch mode, by role; ``None`` when neither has its own."""
    if response is None and judge is None:
        return None
    run = with_batch(config, batch) or DispatchConfig()
    own = {"answers": response, "judge": judge}
    return {
        role: dataclasses.replace(c, max_cost=run.max_cost, batch=run.batch)
        for role, c in own.items()
        if c is not None
    }


async def run_from_dir(
    path: str | Path,
    engine: str | Engine,
    options: DirRunOptions | None = None,
    progress: ProgressCallback | None = None,
) -> RunResult:
    """A directory of documents → question/answer pairs (and optionally Self-Instruct), with
    the settings of ``options`` (``DirRunOptions``): see
    ``InstructionDataset.agenerate_dataset_from_dir``."""
    opts = options if options is not None else DirRunOptions()
    use_self_instruct, self_instruct = opts.use_self_instruct, opts.self_instruct
    num_instructions = opts.num_instructions
    num_instructions_for_finetuning = opts.num_instructions_for_finetuning
    chunk_size, num_samples_per_chunk = opts.chunk_size, opts.num_samples_per_chunk
    config = with_batch(opts.config, opts.batch)
    response_engine = opts.response_engine
    if use_self_instruct:
        check_dataset_size(
            num_instructions_for_finetuning,
            num_instructions,
            (self_instruct or SelfInstructOptions()).max_instances_per_task,
        )
    # plugins load off the event loop; an unknown filter name raises before anything is made
    chosen = (
        await asyncio.to_thread(build_filters, opts.filters, opts.filter_options)
        if use_self_instruct
        else []
    )
    limits = opts.limits
    started = time.monotonic()
    out_dir = Path(opts.out) if opts.out is not None else None
    # the engine and the executor first: a missing key or an unreachable cluster leaves no
    # output folder behind
    eng, runner = await asyncio.to_thread(
        lambda: (prepared_engine(engine), get_executor(opts.executor, opts.executor_options))
    )
    answers = (
        await asyncio.to_thread(prepared_engine, response_engine)
        if response_engine is not None and use_self_instruct
        else None
    )
    try:
        if out_dir is not None:
            claim(out_dir, what="output folder")  # a folder of other files: refused, untouched
    except BaseException:
        runner.close()
        raise
    cache_dir = cache_folder(opts.cache, out_dir)

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
        tally = Tally()
        cache: Cache | None = None
        try:
            cache = Cache(cache_dir / "cache.sqlite3") if cache_dir is not None else None
            async with Dispatcher(
                eng, config=config, cache=cache, progress=progress, stage="questions"
            ) as d:
                failed, replies = await stream_dir(
                    path,
                    opts,
                    d,
                    runner.read,
                    rows_on_disk,
                    to_rows,
                    tally=tally,
                    extract_cache=cache_dir / "extract-cache.sqlite3" if cache_dir else None,
                    skip_dirs=[out_dir] if out_dir is not None else [],
                    progress=progress,
                )
                stats = d.stats.to_dict()
        except BaseException:
            rows_on_disk.close()
            remove_workdir(work)
            raise
        finally:
            if cache is not None:
                cache.close()
    finally:
        runner.close()
    report.update(
        extraction=tally.summary(),
        files=tally.files,
        skipped_files=tally.skipped,
        question_answer_pairs=len(rows_on_disk),
        failed_chunks=failed,
        question_answer_replies=replies.to_dict(),
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
            seed=opts.seed,
            filters=chosen,
            options=self_instruct,
            source="self-instruct:from-dir",
            answers=answers,
            role_configs=response_limits(opts.response_config, opts.config, opts.batch),
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
    roles_note = (
        "no answers role: each request asks for question/answer pairs about a chunk, the "
        "answers written with the questions from the same excerpt (a second request per "
        "question would resend the chunk)"
    )
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
            DirRunOptions(
                chunk_size=self.options.chunk_size,
                num_samples_per_chunk=self.options.samples_per_chunk,
                cache=cache,
                config=ctx.config,
            ),
            ctx.progress,
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

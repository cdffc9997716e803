"""The front door of generation: Self-Instruct or any method from seed tasks
(``agenerate_dataset``), and a folder of documents (``agenerate_dataset_from_dir``), each with
its sync twin. ``InstructionDataset``'s class methods of the same names forward here.

A directory run's settings are ``DirRunOptions``'s fields, written once there: the directory
front doors take them as keywords (their signatures are built from the fields) or as one
``options=`` value. Each sync twin forwards its arguments to the async function untouched.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import instructgen.runs as runs
from instructgen.batching import BatchConfig
from instructgen.dataset import InstructionDataset, run_sync
from instructgen.dispatch import DispatchConfig, with_batch
from instructgen.documents.stream import DirRunOptions
from instructgen.engine_contract import Engine
from instructgen.errors import ConfigError
from instructgen.filter import Filter
from instructgen.method import Method, MethodOptions, RunSize, parse_options
from instructgen.progress import ProgressCallback
from instructgen.selfinstruct.options import SelfInstructOptions
from instructgen.tasks import SeedTask

__all__ = [
    "DirRunOptions",
    "agenerate_dataset",
    "agenerate_dataset_from_dir",
    "generate_dataset",
    "generate_dataset_from_dir",
]

T = TypeVar("T")


def _is_self_instruct(method: str | Method) -> bool:
    name = method.name if isinstance(method, Method) else method
    return name.lower() == "self-instruct"


def sync_twin(afunc: Callable[..., Awaitable[T]], name: str) -> Callable[..., T]:
    """``afunc`` for sync code (also inside a running loop, e.g. notebooks): the same
    signature, the arguments forwarded untouched."""

    def twin(*args: Any, **kwargs: Any) -> T:
        return run_sync(lambda: afunc(*args, **kwargs))

    twin.__name__ = twin.__qualname__ = name
    twin.__doc__ = (
        f"``{afunc.__name__}`` for sync code (also inside a running loop, e.g. notebooks)."
    )
    twin.__signature__ = inspect.signature(afunc)  # type: ignore[attr-defined]
    twin.__module__ = afunc.__module__
    return twin


async def agenerate_dataset(
    path: str | Path | Sequence[SeedTask | Mapping[str, Any]],
    engine: str | Engine,
    num_instructions_for_finetuning: int = 5,
    num_instructions: int = 10,
    *,
    cache: bool | str | Path = True,
    config: DispatchConfig | None = None,
    progress: ProgressCallback | None = None,
    seed: int = 42,
    filters: Sequence[str | Filter] | None = None,
    filter_options: Mapping[str, Mapping[str, Any]] | None = None,
    self_instruct: SelfInstructOptions | None = None,
    batch: bool | BatchConfig = False,
    method: str | Method | None = None,
    method_options: MethodOptions | Mapping[str, Any] | None = None,
    response_engine: str | Engine | None = None,
    response_config: DispatchConfig | None = None,
    judge_engine: str | Engine | None = None,
    judge_config: DispatchConfig | None = None,
) -> InstructionDataset:
    """Self-Instruct from a tasks.jsonl file (or a list of ``SeedTask``s), or any
    generation method (``method="alpaca"``, ``instructgen methods`` lists them).

    ``engine``: an ``Engine`` or a name such as ``"openai:gpt-4o-mini"``.
    ``filters``: filter names or instances (default: every registered default filter);
    ``filter_options``: options per filter name, e.g. ``{"rouge": {"tokenizer":
    "unicode"}}``.

    ``cache``: ``True`` = the user cache (``~/.cache/instructgen``), a folder (the response
    cache is ``FOLDER/cache.sqlite3``, as for directory runs), or ``False``. A path to a
    file (the older form) is still used as that file, with a ``DeprecationWarning``.
    ``config``: a ``DispatchConfig`` (concurrency, rpm, tpm, max_cost, max_reply_bytes, ...).
    ``self_instruct``: the pipeline's tuning knobs (``SelfInstructOptions``:
    num_prompt_instructions, bootstrap_params, ...).
    ``batch``: ``True`` (or a ``BatchConfig``) sends the classification and instance
    requests through the engine's batch API (OpenAI's costs half); the bootstrap stays
    online. A rerun resumes batches still running and submits none twice.
    ``method``: a registered method's name or a ``Method`` instance (default:
    ``"self-instruct"``); ``path`` is then what it reads: a tasks.jsonl, a JSONL of
    instructions, a saved dataset's folder or a folder of documents. ``method_options``:
    its options (a mapping, checked and converted; unknown keys raise ``UnknownNameError``
    listing them). Every method gets the cache, resume, batch mode, ``max_cost``,
    filters and progress; its report section goes to ``run_report``.

    ``response_engine``: another engine (an ``Engine`` or a name) for the answers:
    Self-Instruct's instance requests, Evol-Instruct's answers (the instructions stay on
    ``engine``; a method that writes outputs in the same request as its instructions,
    such as ``alpaca``, refuses it). ``response_config``: that engine's own limits
    (concurrency, rpm, tpm; ``max_cost`` in ``config`` covers both engines).
    ``judge_engine``: the engine of the ``llm-judge`` filter (``filters=[...,
    "llm-judge"]``, ``filter_options={"llm-judge": {"threshold": 4}}``; default
    ``engine``); ``judge_config``: its own limits (concurrency, rpm, tpm), as
    ``response_config``. ``run_report`` gives requests, tokens and cost per engine
    (``requests.by_engine``) and the judge's histogram (``judge``).
    """
    roles = runs.response_limits(response_config, config, batch, judge_config)
    if method is not None and not _is_self_instruct(method):
        if self_instruct is not None:
            raise ConfigError(
                "self_instruct options are Self-Instruct's; pass method_options to "
                f"method {getattr(method, 'name', method)!r}"
            )
        result = await runs.run_method(
            method,
            path,
            engine,
            size=RunSize(num_instructions_for_finetuning, num_instructions, seed),
            method_options=method_options,
            cache=cache,
            config=with_batch(config, batch),
            progress=progress,
            filters=filters,
            filter_options=filter_options,
            response_engine=response_engine,
            judge_engine=judge_engine,
            role_configs=roles,
        )
        return InstructionDataset.from_run(result)
    if method_options is not None:
        if self_instruct is not None:
            raise ConfigError("pass Self-Instruct's options once: self_instruct or method_options")
        if isinstance(method_options, SelfInstructOptions):
            self_instruct = method_options
        elif isinstance(method_options, Mapping):
            parsed = parse_options("self-instruct", SelfInstructOptions, method_options)
            assert isinstance(parsed, SelfInstructOptions)
            self_instruct = parsed
        else:
            raise ConfigError("self-instruct takes SelfInstructOptions or a mapping")
    elif isinstance(method, Method):
        self_instruct = method.options
    result = await runs.run_self_instruct_tasks(
        path,
        engine,
        num_instructions_for_finetuning=num_instructions_for_finetuning,
        num_instructions=num_instructions,
        cache=cache,
        config=with_batch(config, batch),
        progress=progress,
        seed=seed,
        filters=filters,
        filter_options=filter_options,
        options=self_instruct,
        response_engine=response_engine,
        judge_engine=judge_engine,
        role_configs=roles,
    )
    return InstructionDataset.from_run(result)


generate_dataset = sync_twin(agenerate_dataset, "generate_dataset")


async def agenerate_dataset_from_dir(
    path: str | Path,
    engine: str | Engine,
    *,
    options: DirRunOptions | None = None,
    progress: ProgressCallback | None = None,
    **settings: Any,
) -> InstructionDataset:
    """A directory of documents → question/answer pairs (and optionally Self-Instruct on top).
    ``run_report`` lists files read, files skipped (with reasons), requests, tokens and cost.

    The settings are ``DirRunOptions``'s fields, given as keywords (``chunk_size=8000``,
    ``num_samples_per_chunk=5``, ``use_self_instruct=True``, ``out=...``, ``cache=...``,
    ``config=DispatchConfig(...)``, ``limits=ExtractOptions(...)`` or the loose limits
    ``workers``, ``timeout``, ``max_bytes``, ``max_memory_mb``, ``follow_symlinks``,
    ``executor``, ``batch``, ...) or as one ``options=DirRunOptions(...)`` (keywords given
    beside it override its fields). ``cache`` names a folder (``True``: ``out``, or the user
    cache folder without ``out``; ``False``: none). See ``DirRunOptions`` for each field.
    """
    opts = DirRunOptions.from_keywords(options, **settings)
    result = await runs.run_from_dir(path, engine, opts, progress)
    return await asyncio.to_thread(InstructionDataset.from_run, result)


_DIR_SIGNATURE = inspect.signature(agenerate_dataset_from_dir)
agenerate_dataset_from_dir.__signature__ = _DIR_SIGNATURE.replace(  # type: ignore[attr-defined]
    parameters=[
        *[p for p in _DIR_SIGNATURE.parameters.values() if p.kind is not p.VAR_KEYWORD],
        *DirRunOptions.parameters(),
    ]
)

generate_dataset_from_dir = sync_twin(agenerate_dataset_from_dir, "generate_dataset_from_dir")


def _forward_signatures() -> None:
    """``InstructionDataset``'s generation class methods forward here: they show these
    functions' signatures (after ``cls``) and documentation."""
    for name in (
        "agenerate_dataset",
        "generate_dataset",
        "agenerate_dataset_from_dir",
        "generate_dataset_from_dir",
    ):
        target = globals()[name]
        method = getattr(InstructionDataset, name).__func__
        sig = inspect.signature(target)
        cls_param = inspect.Parameter("cls", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        method.__signature__ = sig.replace(parameters=[cls_param, *sig.parameters.values()])
        method.__doc__ = target.__doc__


_forward_signatures()

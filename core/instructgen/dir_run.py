"""A directory run's settings as one value: ``DirRunOptions`` travels from the command line and
the Python API (``generate_dataset_from_dir``) through ``runs.run_from_dir`` to the directory
pipeline. Its fields are the one place the run's parameters are written: the front doors take
them as keywords (their signatures are built from these fields) or as one ``options=`` value.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from instructgen.documents.types import ExtractOptions
from instructgen.errors import ConfigError

if TYPE_CHECKING:
    from instructgen.batching import BatchConfig
    from instructgen.dispatch import DispatchConfig
    from instructgen.engine_contract import Engine
    from instructgen.executor import Executor
    from instructgen.filter import Filter
    from instructgen.selfinstruct.options import SelfInstructOptions

__all__ = ["LIMIT_KEYWORDS", "DirRunOptions"]

LIMIT_KEYWORDS = ("workers", "timeout", "max_bytes", "max_memory_mb", "follow_symlinks")
"""Fields of ``ExtractOptions`` the front doors also take on their own (``workers=4``), each
overriding that field of ``limits``."""

SELF_INSTRUCT_ONLY = ("self_instruct", "filters", "filter_options", "response_engine")
"""Settings that only a run with ``use_self_instruct=True`` uses."""


@dataclass(frozen=True)
class DirRunOptions:
    """How a folder of documents becomes a dataset: question/answer pairs per chunk, and
    optionally Self-Instruct on top of them.

    ``cache``: a folder for the run's caches (``cache.sqlite3`` for the answers,
    ``extract-cache.sqlite3`` for the texts read); ``True``: ``out`` (or the user cache folder
    without ``out``); ``False``: no cache. ``limits``: the per-file limits (``ExtractOptions``);
    the keywords ``workers``, ``timeout``, ``max_bytes``, ``max_memory_mb`` and
    ``follow_symlinks`` given to a front door override those fields. ``config``: the
    dispatcher's limits (``DispatchConfig``: concurrency, rpm, tpm, timeout, max_cost, ...).
    ``executor``: where extraction runs (``"local"``, or an executor plugin such as ``"ray"``
    with ``executor_options``). ``batch``: ``True`` (or a ``BatchConfig``) sends the
    question/answer requests (and Self-Instruct's classification and instance requests)
    through the engine's batch API. ``out`` must be new, empty or instructgen's own; inside
    the folder read, it is not read.

    With ``use_self_instruct=True``, ``self_instruct`` (``SelfInstructOptions``: window,
    num_prompt_instructions, ...), ``filters``, ``filter_options``, ``response_engine`` (for
    Self-Instruct's instance requests) and ``response_config`` (its own limits) tune
    Self-Instruct as in ``generate_dataset``; given without it they raise ``ConfigError``.
    """

    use_self_instruct: bool = False
    chunk_size: int = 8000
    num_samples_per_chunk: int = 5
    num_instructions: int = 10
    num_instructions_for_finetuning: int = 5
    out: str | Path | None = None
    cache: bool | str | Path = True
    config: DispatchConfig | None = None
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    limits: ExtractOptions = field(default_factory=ExtractOptions)
    seed: int = 42
    executor: str | Executor | None = None
    executor_options: Mapping[str, Any] | None = None
    self_instruct: SelfInstructOptions | None = None
    filters: Sequence[str | Filter] | None = None
    filter_options: Mapping[str, Mapping[str, Any]] | None = None
    batch: bool | BatchConfig = False
    response_engine: str | Engine | None = None
    response_config: DispatchConfig | None = None

    def __post_init__(self) -> None:
        if self.num_samples_per_chunk < 1:
            raise ConfigError("num_samples_per_chunk must be at least 1")
        if self.chunk_size < 1:
            raise ConfigError("chunk_size must be at least 1")
        if self.limits is None:  # the old default of the keyword
            object.__setattr__(self, "limits", ExtractOptions())
        if not self.use_self_instruct:
            unused = [n for n in SELF_INSTRUCT_ONLY if getattr(self, n) is not None]
            if unused:
                raise ConfigError(
                    f"{', '.join(unused)}: used only with use_self_instruct=True; pass "
                    f"use_self_instruct=True or leave {'it' if len(unused) == 1 else 'them'} out"
                )

    @classmethod
    def from_keywords(
        cls, options: DirRunOptions | None = None, /, **keywords: Any
    ) -> DirRunOptions:
        """The options a front door was given: ``options`` (default: the defaults) with the
        fields named in ``keywords`` replaced, and the loose limits (``LIMIT_KEYWORDS``, when
        not ``None``) written into ``limits``. An unknown keyword is a ``TypeError``, as for
        any function."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(keywords) - names - set(LIMIT_KEYWORDS))
        if unknown:
            raise TypeError(
                f"unexpected keyword argument(s) {', '.join(unknown)}; a directory run takes "
                f"{', '.join([*sorted(names), *LIMIT_KEYWORDS])}"
            )
        own = {k: v for k, v in keywords.items() if k in names}
        loose = {k: keywords[k] for k in LIMIT_KEYWORDS if keywords.get(k) is not None}
        base = options if options is not None else cls()
        limits = own.get("limits", base.limits) or ExtractOptions()
        if loose:
            own["limits"] = replace(limits, **loose)
        return replace(base, **own) if own else base

    @classmethod
    def parameters(cls) -> list[inspect.Parameter]:
        """The fields, and the loose limits, as keyword-only parameters: what a front door's
        ``inspect.signature`` shows."""
        out = []
        for f in fields(cls):
            default = f.default if f.default is not MISSING else None
            if f.name == "limits":
                default = None
            out.append(
                inspect.Parameter(
                    f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=f.type
                )
            )
        for name, kind in (
            ("workers", "int | None"),
            ("timeout", "float | None"),
            ("max_bytes", "int | None"),
            ("max_memory_mb", "int | None"),
            ("follow_symlinks", "bool | None"),
        ):
            out.append(
                inspect.Parameter(
                    name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=kind
                )
            )
        return out

"""The method contract: how a generation method turns an input into dataset rows.

A method (Self-Instruct, document Q/A, Alpaca, Evol-Instruct, a third-party one) declares what
it is (``name``, ``paper``), what it reads (``inputs``), its typed options (``Options``, a frozen
dataclass; unknown options are refused with the list), the engine roles it sends requests for
(``roles``), how many requests it expects (``estimate``, for the dry run), and ``run``, which
turns the input into rows by sending requests through the ``MethodContext`` the core hands it.

The context carries everything a method gets without code of its own: the dispatcher with the
per-request cache (resume after kill -9), retries, rate limits and ``--max-cost``; batch mode
for requests marked ``batchable``; the sliding window for methods that feed on their own
output; the instruction filters chosen with ``--filter/--no-filter``; progress. What ``run``
returns is written to run.json next to the core's own sections (engine, requests, filters).

    class Echo(Method):
        name = "echo"
        paper = "none"
        inputs = ("tasks",)

        @dataclass(frozen=True)
        class Options(MethodOptions):
            prefix: str = field(default="Answer:", metadata={"help": "put before each answer"})

        def estimate(self, source, size, *, chat):
            return [RequestEstimate("answers", self.request(source.instructions()[0]), size.n)]

        async def run(self, source, ctx):
            ...
            return MethodResult(rows, {"answers": len(rows)})
"""

from __future__ import annotations

import dataclasses
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args, get_origin

from instructgen.engine_contract import Completion, Engine, Request
from instructgen.errors import ConfigError, EngineError, UnknownNameError
from instructgen.filter import Filter
from instructgen.progress import ProgressCallback
from instructgen.tasks import SeedTask

__all__ = [
    "INPUT_KINDS",
    "InputKind",
    "Method",
    "MethodContext",
    "MethodInput",
    "MethodOptions",
    "MethodResult",
    "OptionSpec",
    "RequestEstimate",
    "RunSize",
    "WindowStats",
    "parse_options",
]

InputKind = Literal["tasks", "documents", "dataset", "instructions"]
INPUT_KINDS: tuple[InputKind, ...] = ("tasks", "documents", "dataset", "instructions")
"""What a method may read: a tasks.jsonl file, a folder of documents, a saved dataset
(``InstructionDataset.save``), or a JSONL file of instructions (``{"instruction": ...}`` per
line)."""

ROLES = ("instructions", "answers", "judge")
"""The engine roles the core knows. A method sends each request for one role; every role a run
is not given its own engine for falls back to the ``instructions`` engine. ``answers`` is the
response engine (``--response-engine``), ``judge`` the judge's (``--judge-engine``: the
``llm-judge`` filter's ratings, and a method's own verdicts such as Evol-Instruct's
elimination)."""


# -- input and size ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MethodInput:
    """A method's input, loaded and checked by the core. ``kind`` says which field is filled:
    ``tasks`` (seed tasks), ``rows`` (a saved dataset's rows), ``instructions`` (a JSONL of
    instructions) or only ``path`` (a folder of documents)."""

    kind: InputKind
    path: Path | None = None
    tasks: tuple[SeedTask, ...] = ()
    rows: tuple[Mapping[str, Any], ...] = ()
    seed_instructions: tuple[str, ...] = ()

    def instructions(self) -> list[str]:
        """The input's instructions, whatever its kind (empty for documents)."""
        if self.kind == "tasks":
            return [t.instruction for t in self.tasks]
        if self.kind == "dataset":
            return [str(r.get("instruction", "")) for r in self.rows]
        return list(self.seed_instructions)


@dataclass(frozen=True)
class RunSize:
    """The seed's two size parameters and the seed: ``n`` rows wanted exactly (or all there
    are), ``num_instructions`` the cap on new instructions (a method without that notion may
    ignore it), ``seed`` for every random choice."""

    n: int = 5
    num_instructions: int = 10
    seed: int = 42


# -- options -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MethodOptions:
    """Base of a method's options: subclass it as a frozen dataclass whose fields have
    defaults, simple types (``int``, ``float``, ``str``, ``bool``, optional ones, or a
    ``Literal`` of strings) and a ``metadata={"help": ...}``. Options are part of what a
    method's prompts depend on, so they reach the cache key through the requests."""


@dataclass(frozen=True)
class OptionSpec:
    """One option as ``instructgen methods`` lists it."""

    name: str
    type: str
    default: Any
    help: str
    choices: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["choices"] = list(self.choices)
        if not self.choices:
            out.pop("choices")
        return out


def _resolved_types(options_cls: type[MethodOptions]) -> dict[str, Any]:
    import sys

    module = sys.modules.get(options_cls.__module__)
    return typing.get_type_hints(options_cls, vars(module) if module else None)


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(the type without ``None``, whether ``None`` is allowed)."""
    origin = get_origin(tp)
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else tp), len(args) < len(get_args(tp))
    return tp, False


def _type_name(tp: Any) -> str:
    base, optional = _base_type(tp)
    name = "choice" if get_origin(base) is Literal else getattr(base, "__name__", str(base))
    return f"{name} or none" if optional else name


def option_specs(options_cls: type[MethodOptions]) -> list[OptionSpec]:
    hints = _resolved_types(options_cls)
    specs = []
    for f in dataclasses.fields(options_cls):
        base, _ = _base_type(hints[f.name])
        choices = tuple(str(a) for a in get_args(base)) if get_origin(base) is Literal else ()
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        specs.append(
            OptionSpec(
                f.name, _type_name(hints[f.name]), default, str(f.metadata.get("help", "")), choices
            )
        )
    return specs


_EXAMPLES = {"bool": "true", "int": "3", "float": "0.7"}
_EXAMPLES = {"bool": "true", "int": "3", "float": "0.7"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(method: str, key: str, value: Any, tp: Any) -> Any:
    base, optional = _base_type(tp)
    where = f"method {method!r} option {key!r}"
    if value is None or (optional and isinstance(value, str) and value.lower() == "none"):
        if optional:
            return None
        raise ConfigError(f"{where}: a value is required")
    if get_origin(base) is Literal:
        allowed = [str(a) for a in get_args(base)]
        if str(value) not in allowed:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
        return str(value)
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(value)
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if base is float:
            return float(value)
        if base is str:
            return str(value)
    except (TypeError, ValueError):
        example = _EXAMPLES.get(getattr(base, "__name__", ""), "x")
        raise ConfigError(
            f"{where}: {value!r} is not a {_type_name(tp)}; e.g. -m {key} {example}"
        ) from None
    return value  # a type the core does not convert: passed through


def parse_options(
    method: str, options_cls: type[MethodOptions], raw: Mapping[str, Any] | None
) -> MethodOptions:
    """``options_cls`` from ``raw`` (strings from ``-m KEY VALUE`` or Python values):
    converted to the declared types and checked by the options' ``__post_init__``. An unknown
    key raises ``UnknownNameError`` (exit 2) listing the method's options."""
    hints = _resolved_types(options_cls)
    names = [f.name for f in dataclasses.fields(options_cls)]
    values: dict[str, Any] = {}
    for key, value in (raw or {}).items():
        name = key.replace("-", "_")
        if name not in names:
            raise UnknownNameError(f"option of method {method!r}", key, names or ["(none)"])
        values[name] = _convert(method, key, value, hints[name])
    try:
        return options_cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"method {method!r}: {exc}") from None


# -- estimates and results ----------------------------------------------------------------------


@dataclass(frozen=True)
class RequestEstimate:
    """One stage of a method's requests for the dry run: a representative ``request`` (its
    prompt and ``max_tokens`` price the stage), how many such requests the run is ``expected``
    to send, and at most how many (``upper``; ``None`` when unbounded). ``reply_tokens``: the
    completion tokens a typical reply has (``None``: half of ``max_tokens``)."""

    stage: str
    request: Request
    expected: float
    upper: int | None = None
    role: str = "instructions"
    batchable: bool = False
    reply_tokens: int | None = None


@dataclass
class MethodResult:
    """Rows (``instruction``, ``text`` — the input, may be empty —, ``target`` — the output —,
    and optionally ``seed_task_ids``, ``is_classification``, ``source``; the core adds the
    engine and model when a row lacks them) and the method's section of run.json (counts,
    drops by reason, ...; JSON-serialisable)."""

    rows: list[dict[str, Any]]
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class WindowStats:
    """What a sliding window did: requests ``issued``, results ``processed`` in request order,
    items ``kept``, ``failed`` requests and whether it ``gave_up`` (too many answers in a row
    added nothing)."""

    issued: int
    processed: int
    kept: int
    failed: int
    gave_up: bool


# -- the context the core hands a method -------------------------------------------------------


class MethodContext(ABC):
    """What the core gives a running method. Every request goes through ``complete`` (or
    ``complete_many``, ``sliding_window``), so it is cached (a rerun after kill -9 sends only
    what was not answered), retried, rate-limited, budgeted (``--max-cost``) and, when marked
    ``batchable`` in batch mode, sent through the engine's batch API."""

    size: RunSize
    filters: Sequence[Filter]
    """The instruction filters the user chose (``--filter/--no-filter``), in order; a method
    that generates instructions runs them (``accept``), one that does not may ignore them."""
    progress: ProgressCallback | None

    @abstractmethod
    def engine(self, role: str = "instructions") -> Engine:
        """The engine that answers ``role``'s requests (its ``kind``: ``chat`` or
        ``completion``, decides how a prompt is sent)."""

    @abstractmethod
    async def complete(
        self,
        request: Request,
        *,
        role: str = "instructions",
        sample: int = 0,
        batchable: bool = False,
    ) -> Completion | EngineError:
        """One request. A failure that retrying did not cure comes back as an ``EngineError``
        value (record it and go on); a wrong key, an exhausted budget or an unreachable server
        raise and end the run. ``sample`` tells identical prompts meant to give different
        answers apart in the cache. ``batchable``: no later request is built from this answer,
        so batch mode may send it through the batch API."""

    @abstractmethod
    async def complete_many(
        self,
        requests: Sequence[Request],
        *,
        role: str = "instructions",
        batchable: bool = True,
    ) -> list[Completion | EngineError]:
        """``requests`` concurrently, the answers in order (failures as values)."""

    @abstractmethod
    def expect(self, n: int, role: str = "instructions") -> None:
        """Announce ``n`` more requests, for the progress total and ETA."""

    @abstractmethod
    async def sliding_window(
        self,
        build: Callable[[int, int], Request],
        consume: Callable[[int, Completion | EngineError], Awaitable[int]],
        *,
        target: int,
        window: int = 64,
        prior_yield: float = 4.0,
        max_stalled: int = 25,
        role: str = "instructions",
        batchable: bool = False,
        independent: bool = False,
    ) -> WindowStats:
        """Requests ``build(i, pool)`` kept ``window`` in flight, their answers handed to
        ``consume(i, answer)`` strictly in request order; ``consume`` returns how many items
        it kept. ``pool`` is how many items were kept after answers ``0 .. i - window``: a
        prompt that shows earlier output may use only those, so the dataset never depends on
        timing or concurrency, and a rerun finds every answer in the cache. Requests stop once
        ``target`` items are kept (what is still in flight is cancelled), when the items kept
        plus the expected yield of those in flight reach it (``prior_yield`` per answer until
        answers arrive), or after ``max_stalled`` answers in a row that kept nothing.
        ``independent``: the prompts show no earlier output (``pool`` is always 0), so a new
        request goes out as soon as an answer arrives, not when the answers ahead of it have
        been consumed: a slow ``consume`` (filters against a large pool) no longer holds the
        requests back. The dataset still depends only on the answers in request order."""

    @abstractmethod
    async def accept(
        self, candidates: Sequence[str], room: int, *, stage: str = "instructions"
    ) -> list[str]:
        """The candidates every chosen filter accepts, at most ``room``, in order; the
        filters then keep them (novelty against everything kept). Runs in a worker thread;
        drops are counted per filter into run.json. Call ``prime`` first."""

    @abstractmethod
    def prime(self, kept: Sequence[str]) -> None:
        """Tell the filters what already counts as kept (e.g. the seed instructions). Cheap
        on the event loop: the filters index them in their worker thread, before the next
        ``accept`` checks anything."""

    @abstractmethod
    def tick(self, stage: str, done: int, total: int | None = None) -> None:
        """Report a method-level progress count (e.g. instructions kept)."""


# -- the method ---------------------------------------------------------------------------------


class Method(ABC):
    """A generation method. Subclass, set the class attributes, implement ``estimate`` and
    ``run``; register the class with ``register_methods(registry)``."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    """One line: what the method does."""
    paper: ClassVar[str] = ""
    """The citation, e.g. ``Taori et al. 2023, Stanford Alpaca``."""
    url: ClassVar[str] = ""
    inputs: ClassVar[tuple[InputKind, ...]] = ("tasks",)
    roles: ClassVar[tuple[str, ...]] = ("instructions",)
    """The engine roles the method sends requests for (see ``ROLES``)."""
    roles_note: ClassVar[str] = ""
    """What each role's engine does in this method, or why there is no ``answers`` role
    (e.g. outputs written in the same request as the instructions); listed by ``instructgen
    methods``."""
    Options: ClassVar[type[MethodOptions]] = MethodOptions
    filter_options: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    """Defaults for the instruction filters' options, by filter name (what the user gives
    wins), e.g. ``{"blacklist": {"extra": ("video", "audio")}}``."""
    requests_per_example: ClassVar[float | None] = None
    """Requests per kept example, as measured (``docs/benchmarks.md``); listed by
    ``instructgen methods``. ``None``: not measured."""

    def __init__(self, options: MethodOptions | Mapping[str, Any] | None = None) -> None:
        if options is None or isinstance(options, Mapping):
            options = parse_options(self.name, self.Options, options)
        elif not isinstance(options, self.Options):
            raise ConfigError(
                f"method {self.name!r} takes {self.Options.__name__}, got {type(options).__name__}"
            )
        self.options: Any = options

    @classmethod
    def option_specs(cls) -> list[OptionSpec]:
        return option_specs(cls.Options)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """What ``instructgen methods --json`` prints for the method."""
        return {
            "name": cls.name,
            "title": cls.title,
            "paper": cls.paper,
            "url": cls.url,
            "inputs": list(cls.inputs),
            "roles": list(cls.roles),
            "roles_note": cls.roles_note,
            "options": [o.to_dict() for o in cls.option_specs()],
            "requests_per_example": cls.requests_per_example,
        }

    def check_input(self, source: MethodInput) -> None:
        """Refuse an input kind the method does not read (the core calls it before a run)."""
        if source.kind not in self.inputs:
            raise ConfigError(
                f"method {self.name!r} reads {' or '.join(self.inputs)}, not {source.kind}"
                + (f" ({source.path})" if source.path is not None else "")
            )

    def check_size(self, size: RunSize) -> None:  # noqa: B027 - optional
        """Refuse a size the method can never reach (``ConfigError``), before anything is
        sent."""

    @abstractmethod
    def estimate(self, source: MethodInput, size: RunSize, *, chat: bool) -> list[RequestEstimate]:
        """The requests a run would send, per stage (for the dry run and its expected cost);
        ``chat``: whether the engine takes chat messages or a completion prompt."""

    @abstractmethod
    async def run(self, source: MethodInput, ctx: MethodContext) -> MethodResult:
        """Turn ``source`` into rows (exactly ``ctx.size.n`` or all there are) through
        ``ctx``. Depend only on the input, the options, ``ctx.size`` and the answers (in
        request order), never on timing: then a rerun replays the same requests, finds them
        in the cache and yields the same dataset byte for byte."""

"""What `generate` and `from-dir` share: the common flags, building the engine and the
dispatcher's settings from them, rendering progress, and writing run.json atomically.

    @click.command()
    @run_options
    def generate(..., **common):
        opts = RunOptions.pop_from(common)
        engine = opts.build_engine()
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import click

from instructgen.limits import (
    DEFAULT_FILE_TIMEOUT,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_MEMORY_MB,
    DEFAULT_REQUEST_TIMEOUT,
)
from instructgen.money import format_usd
from instructgen.progress import ProgressEvent
from instructgen.reply_size import DEFAULT_MAX_REPLY_BYTES

if TYPE_CHECKING:
    from instructgen.dataset import InstructionDataset
    from instructgen.dispatch import DispatchConfig
    from instructgen.documents.types import ExtractOptions
    from instructgen.engine_contract import Engine

F = TypeVar("F", bound=Callable[..., Any])


class ByteSize(click.ParamType):
    """A size in bytes: ``4194304``, ``512K``, ``8M``, ``8MB``, ``8MiB``, ``1G`` (1024-based)."""

    name = "size"
    _UNITS: ClassVar[dict[str, int]] = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().upper().replace(" ", "")
        for suffix in ("IB", "B"):
            if text.endswith(suffix) and text[: -len(suffix)][-1:].isalpha():
                text = text[: -len(suffix)]
                break
        unit = text[-1:] if text[-1:].isalpha() else ""
        try:
            number = float(text[: len(text) - len(unit)])
            size = int(number * self._UNITS[unit])
        except (KeyError, ValueError):
            self.fail(f"{value!r} is not a size (e.g. 4194304, 512K, 8M, 1G)", param, ctx)
        if size < 1024:
            self.fail(f"{value!r} is below 1K: no reply would fit", param, ctx)
        return size


class HedgeAfter(click.ParamType):
    """``auto``, ``off`` or a number of seconds."""

    name = "seconds|auto|off"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float | str:
        if isinstance(value, float):
            return value
        text = str(value).strip().lower()
        if text in ("auto", "off"):
            return text
        try:
            seconds = float(text)
        except ValueError:
            self.fail(f"{value!r} is not a number of seconds, 'auto' or 'off'", param, ctx)
        if not seconds > 0:
            self.fail(f"{value!r} is not a positive number of seconds", param, ctx)
        return seconds


_OPTIONS = [
    click.option(
        "--engine",
        "engine_name",
        required=True,
        help="Engine name or alias: openai, openai-completions, cohere, ai21, chatgpt, "
        "davinci, medium, j2-grande, or any plugin's (see `instructgen plugins`).",
    ),
    click.option("--model", default=None, help="Model name (default: the engine's)."),
    click.option(
        "-o",
        "--option",
        "engine_options",
        type=(str, str),
        multiple=True,
        metavar="KEY VALUE",
        help="An engine option, e.g. -o reasoning_effort low (repeatable; the engine's "
        "options are listed in docs/engines.md). Options are part of the cache key.",
    ),
    click.option(
        "--base-url",
        default=None,
        help="API base URL, e.g. a local OpenAI-compatible server (http://localhost:11434/v1 "
        "for Ollama; a bare host gets /v1). What each engine expects: docs/engines.md.",
    ),
    click.option(
        "--out",
        "out",
        type=click.Path(path_type=Path),
        default=None,
        help="Output folder: dataset, run.json and the cache (rerun to resume).",
    ),
    click.option(
        "--concurrency",
        type=click.IntRange(min=1),
        default=16,
        show_default=True,
        help="Requests in flight at once.",
    ),
    click.option(
        "--rpm",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="Requests-per-minute limit.",
    ),
    click.option(
        "--prompts-per-request",
        type=click.IntRange(min=1),
        default=20,
        show_default=True,
        help="On engines that take several prompts in one request (openai-completions), send "
        "up to this many requests of the same parameters together: a requests-per-minute "
        "quota then goes further. Each answer is cached on its own; 1: one prompt a request.",
    ),
    click.option(
        "--tpm",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="Tokens-per-minute limit.",
    ),
    click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=DEFAULT_REQUEST_TIMEOUT,
        show_default=True,
        help="Seconds to wait for one answer (a server answering nothing for that long "
        "is given up).",
    ),
    click.option(
        "--max-reply-bytes",
        type=ByteSize(),
        default="4M",
        show_default=True,
        help="The most bytes one reply may have (e.g. 512K, 16M). Reading a larger one stops "
        "at the limit and the request fails without a retry; nothing of it is cached. In batch "
        "mode, the limit of each line of a result file.",
    ),
    click.option(
        "--hedge-after",
        type=HedgeAfter(),
        default="auto",
        show_default=True,
        help="Send a second copy of a request that has had no answer for this many seconds "
        "and use whichever answers first, so one request a server holds does not hold up the "
        "run. auto: 3 x the time 95 % of the latest requests of its kind took, at least 5 s. "
        "Copies stay within 5 % of the requests; a copy cancelled in flight may still be "
        "billed. off: send every request once.",
    ),
    click.option(
        "--seed",
        type=int,
        default=42,
        show_default=True,
        help="Random seed: same seed and cache give the same dataset.",
    ),
    click.option("--no-cache", is_flag=True, help="Neither read nor write the response cache."),
    click.option(
        "--max-cost",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="Stop before spending more than this many US dollars.",
    ),
    click.option(
        "--dry-run",
        is_flag=True,
        help="Print the first prompts and the estimated requests, tokens and cost; send nothing.",
    ),
    click.option("--json", "as_json", is_flag=True, help="Print one JSON object."),
    click.option(
        "--batch",
        is_flag=True,
        help="Send the requests that wait on no other answer (document Q/A, Self-Instruct "
        "classification and instances) through the engine's batch API: OpenAI's costs half "
        "and answers within 24 h. The bootstrap stays online. Rerun the same command to "
        "resume batches still running; none is submitted twice.",
    ),
    click.option(
        "--batch-fallback",
        type=click.Choice(["batch", "online"]),
        default="batch",
        show_default=True,
        help="Where requests that failed in a batch are sent again: a new batch, or online.",
    ),
    click.option(
        "--batch-poll",
        type=click.FloatRange(min=0, min_open=True),
        default=10.0,
        show_default=True,
        help="Seconds between the first polls of a batch (slowing down to 5 minutes).",
    ),
]


def _stack(options: list[Callable[[F], F]]) -> Callable[[F], F]:
    def decorate(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


run_options = _stack(_OPTIONS)
"""The flags every generating command shares (engine, limits, cache, budget, output)."""


def _limit_options(role: str, whose: str) -> list[Callable[[F], F]]:
    """A role's own limits (``--ROLE-concurrency``, ``--ROLE-rpm``, ``--ROLE-tpm``), declared
    once for every role that has an engine of its own."""
    return [
        click.option(
            f"--{role}-concurrency",
            type=click.IntRange(min=1),
            default=None,
            help=f"{whose} requests in flight (default: --concurrency).",
        ),
        click.option(
            f"--{role}-rpm",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            help=f"{whose} requests-per-minute limit (default: --rpm).",
        ),
        click.option(
            f"--{role}-tpm",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            help=f"{whose} tokens-per-minute limit (default: --tpm).",
        ),
    ]


_RESPONSE_OPTIONS = [
    click.option(
        "--response-engine",
        default=None,
        help="Another engine for the answers: Self-Instruct's instances (inputs and outputs), "
        "Evol-Instruct's answers; the instructions stay on --engine. Default: --engine "
        "(with --response-model alone, the same engine with that model). `instructgen "
        "methods` says which methods have answers of their own.",
    ),
    click.option("--response-model", default=None, help="The response engine's model."),
    click.option(
        "--response-base-url",
        default=None,
        help="The response engine's API base URL (default: --base-url when it is the same engine).",
    ),
    *_limit_options("response", "The response engine's"),
]

_JUDGE_OPTIONS = [
    click.option(
        "--judge-engine",
        default=None,
        help="The engine of the llm-judge filter (--filter llm-judge), and of a method's own "
        "verdicts (Evol-Instruct's elimination). Default: --engine.",
    ),
    click.option("--judge-model", default=None, help="The judge engine's model."),
    click.option(
        "--judge-base-url",
        default=None,
        help="The judge engine's API base URL (default: --base-url when it is the same engine).",
    ),
    *_limit_options("judge", "The judge engine's"),
    click.option(
        "--judge-threshold",
        type=click.FloatRange(min=0),
        default=None,
        help="llm-judge: keep the rows rated at least this on its 0-5 scale (default 4.5, "
        "AlpaGasus's cut).",
    ),
]

role_options = _stack(_RESPONSE_OPTIONS + _JUDGE_OPTIONS)
"""A second engine for the answers and the judge's engine, with their own limits."""

size_options = _stack(
    [
        click.option(
            "-n",
            "--num-instructions-for-finetuning",
            "n_examples",
            type=click.IntRange(min=1),
            default=5,
            show_default=True,
            help="Size of the dataset: the number of examples it will hold.",
        ),
        click.option(
            "--num-instructions",
            type=click.IntRange(min=1),
            default=10,
            show_default=True,
            help="Cap on the new instructions generated.",
        ),
    ]
)
"""The seed's two dataset-size parameters."""

self_instruct_options = _stack(
    [
        click.option(
            "--num-prompt-instructions",
            type=click.IntRange(min=1),
            default=8,
            show_default=True,
            help="Instructions listed in each bootstrap prompt.",
        ),
        click.option(
            "--rouge-tokenizer",
            type=click.Choice(["default", "unicode"]),
            default="default",
            show_default=True,
            help="'unicode' for instructions in non-Latin scripts.",
        ),
        click.option(
            "--allow-non-ascii",
            is_flag=True,
            help="Keep instructions that start with a non-ASCII character.",
        ),
        click.option(
            "--window",
            type=click.IntRange(min=1),
            default=64,
            show_default=True,
            help="Bootstrap requests kept in flight (independent of --concurrency); request i "
            "lists instructions kept before answer i-WINDOW. Part of what the dataset depends "
            "on: the same seed and window give the same dataset at any --concurrency.",
        ),
        click.option(
            "--filter",
            "add_filters",
            multiple=True,
            metavar="NAME",
            help="Also run this instruction filter (a plugin's filter that is off by default); "
            "repeatable. See `instructgen plugins`.",
        ),
        click.option(
            "--no-filter",
            "drop_filters",
            multiple=True,
            metavar="NAME",
            help="Do not run this instruction filter (e.g. rouge, blacklist); repeatable.",
        ),
    ]
)
"""Self-Instruct's prompts, bootstrap window and instruction filters (their settings)."""


def filter_settings(rouge_tokenizer: str, allow_non_ascii: bool) -> dict[str, dict[str, Any]]:
    """The built-in filters' options from ``--rouge-tokenizer`` and ``--allow-non-ascii``."""
    return {
        "rouge": {"tokenizer": rouge_tokenizer},
        "leading-char": {"allow_non_ascii": allow_non_ascii},
    }


def chosen_filters(add: tuple[str, ...], drop: tuple[str, ...]) -> list[str] | None:
    """The instruction filters to run: the default ones, plus ``add``, minus ``drop`` (names or
    aliases, checked against the registry); ``None`` when both are empty (the defaults)."""
    from instructgen import plugins

    if not add and not drop:
        return None
    reg = plugins.filters()
    for name in (*add, *drop):
        reg.get(name)  # UnknownNameError (exit 2) names the registered filters
    dropped = {reg.entry(n).name for n in drop}
    names = [
        e.name for e in reg if e.meta.get("stage") == "instruction" and e.meta.get("default", True)
    ]
    names += [reg.entry(n).name for n in add if reg.entry(n).name not in names]
    return [n for n in names if n not in dropped]


def judge_chosen(filters: list[str] | None) -> bool:
    """Whether a row judge (a filter of stage ``row``, e.g. llm-judge) is among ``filters``."""
    from instructgen import plugins

    reg = plugins.filters()
    return any(reg.entry(n).meta.get("stage") == "row" for n in filters or [])


def check_judge_flags(opts: RunOptions, filters: list[str] | None) -> None:
    """--judge-threshold says nothing without a judge: a ``ConfigError`` (exit 2)."""
    from instructgen.errors import ConfigError

    if opts.judge_threshold is not None and not judge_chosen(filters):
        raise ConfigError(
            "--judge-threshold applies only with --filter llm-judge: add it or leave "
            "--judge-threshold out"
        )
    if opts.judge_threshold is not None:
        from instructgen import plugins

        try:
            plugins.filters().get("llm-judge")(threshold=opts.judge_threshold)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"--judge-threshold: {exc}") from None


def role_summary(report: dict[str, Any]) -> str:
    """The summary line's figures per engine (a run with a response or judge engine of its
    own) and what the judge kept."""
    parts = []
    for e in (report.get("requests") or {}).get("by_engine") or []:
        parts.append(
            f"{e['engine']}:{e['model']} ({'+'.join(e['roles'])}) "
            f"{e['requests_sent']} sent, {e['requests_cached']} cached, "
            f"{e['prompt_tokens'] + e['completion_tokens']:,} tokens, "
            f"{format_usd(e['cost_usd'])}"
        )
    out = "; by engine: " + ", ".join(parts) if parts else ""
    j = report.get("judge")
    if j:
        out += (
            f"; judge kept {j['rows_kept']} of {j['rows_judged']} rows rated "
            f"(threshold {j['threshold']:g}"
            + (f", {j['rows_unjudged']} unjudged" if j["rows_unjudged"] else "")
            + f"), {j['rating_requests']} rating requests"
        )
    return out


def refuse_unused(ctx: click.Context, names: tuple[str, ...], needs: str) -> None:
    """A ``ConfigError`` (exit 2, one line) naming the options among ``names`` (parameter
    names) that were given on the command line although they only apply with the flag
    ``needs``, which was not given."""
    from click.core import ParameterSource

    from instructgen.errors import ConfigError

    given = [
        "/".join(p.opts)
        for p in ctx.command.params
        if p.name is not None
        and p.name in names
        and ctx.get_parameter_source(p.name) not in (None, ParameterSource.DEFAULT)
    ]
    if given:
        one = len(given) == 1
        raise ConfigError(
            f"{', '.join(given)} {'applies' if one else 'apply'} only with {needs}: add "
            f"{needs} or leave {'it' if one else 'them'} out"
        )


scan_options = _stack(
    [
        click.option(
            "--chunk-size",
            type=click.IntRange(min=100),
            default=8000,
            show_default=True,
            help="Characters per chunk.",
        ),
        click.option("--include", multiple=True, help="Glob of files to read (repeatable)."),
        click.option("--exclude", multiple=True, help="Glob of files to leave out (repeatable)."),
        click.option(
            "--workers",
            type=click.IntRange(min=0),
            default=2,
            show_default=True,
            help="Extraction processes (0: in this process).",
        ),
        click.option(
            "--file-timeout",
            type=click.FloatRange(min=1),
            default=DEFAULT_FILE_TIMEOUT,
            show_default=True,
            help="Seconds allowed to read one file; a file that takes longer is skipped.",
        ),
        click.option(
            "--max-file-size",
            type=click.FloatRange(min=0, min_open=True),
            default=DEFAULT_MAX_BYTES / 1024 / 1024,
            show_default=True,
            help="Megabytes; larger files are skipped unread.",
        ),
        click.option(
            "--follow-symlinks",
            is_flag=True,
            help="Also read files that symbolic links lead to outside the folder "
            "(by default such links are skipped: 'symlink leaves the folder').",
        ),
        click.option(
            "--max-memory",
            type=click.IntRange(min=0),
            default=DEFAULT_MAX_MEMORY_MB,
            show_default=True,
            help="Megabytes an extraction process (with the programs it starts, e.g. "
            "tesseract) may use for one file; a file that needs more is skipped. 0: no limit.",
        ),
    ]
)
"""How a directory is read and chunked."""


def scan_limits(kwargs: dict[str, Any]) -> ExtractOptions:
    """Pop the per-file limits of ``scan_options`` (workers, time, size, memory) as the one
    ``ExtractOptions`` value that travels to the extraction workers."""
    from instructgen.documents.types import ExtractOptions

    return ExtractOptions(
        workers=kwargs.pop("workers"),
        timeout=kwargs.pop("file_timeout"),
        max_bytes=int(kwargs.pop("max_file_size") * 1024 * 1024),
        max_memory_mb=kwargs.pop("max_memory"),
        follow_symlinks=kwargs.pop("follow_symlinks"),
    )


format_option = click.option(
    "--format",
    "fmt",
    default=None,
    help="Also export the dataset in this format (jsonl, alpaca, sharegpt, openai, parquet, "
    "or a plugin's) into --out.",
)


@dataclass
class RunOptions:
    engine_name: str
    model: str | None
    engine_options: tuple[tuple[str, str], ...]
    base_url: str | None
    out: Path | None
    concurrency: int
    rpm: float | None
    tpm: float | None
    timeout: float
    seed: int
    no_cache: bool
    max_cost: float | None
    dry_run: bool
    as_json: bool
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
    hedge_after: float | str = "auto"
    prompts_per_request: int = 20
    batch: bool = False
    batch_fallback: str = "batch"
    batch_poll: float = 10.0
    response_engine: str | None = None
    response_model: str | None = None
    response_base_url: str | None = None
    response_concurrency: int | None = None
    response_rpm: float | None = None
    response_tpm: float | None = None
    judge_engine: str | None = None
    judge_model: str | None = None
    judge_base_url: str | None = None
    judge_concurrency: int | None = None
    judge_rpm: float | None = None
    judge_tpm: float | None = None
    judge_threshold: float | None = None

    @classmethod
    def pop_from(cls, kwargs: dict[str, Any]) -> RunOptions:
        names = cls.__dataclass_fields__
        return cls(**{k: kwargs.pop(k) for k in list(names) if k in kwargs})

    def build_engine(self) -> Engine:
        from instructgen.engines import create_engine

        kw: dict[str, Any] = dict(self.engine_options)  # --timeout: the dispatcher's
        if self.model:
            kw["model"] = self.model
        if self.base_url:
            kw["base_url"] = self.base_url
        return create_engine(self.engine_name, **kw)

    def _role_spec(self, name: str | None, model: str | None, base_url: str | None) -> Any:
        """(engine name, model, base URL, engine options) of another role's engine: the run's
        engine's options and base URL carry over when it is the same engine."""
        from instructgen.engines import engine_class

        same = name is None or engine_class(name) is engine_class(self.engine_name)
        engine_name = self.engine_name if name is None else name
        options = dict(self.engine_options) if same else {}
        return engine_name, model, base_url or (self.base_url if same else None), options

    def role_engine(self, role: str) -> Engine | None:
        """The ``answers`` (--response-*) or ``judge`` (--judge-*) engine; ``None`` when none
        of its flags was given (the role then uses the run's engine)."""
        from instructgen.engines import create_engine

        name, model, base_url = (
            (self.response_engine, self.response_model, self.response_base_url)
            if role == "answers"
            else (self.judge_engine, self.judge_model, self.judge_base_url)
        )
        limits = self.role_config("response" if role == "answers" else "judge")
        if name is None and model is None and base_url is None and limits is None:
            return None  # with limits of its own alone: the run's engine, a dispatcher apart
        engine_name, model, base_url, options = self._role_spec(name, model, base_url)
        kw: dict[str, Any] = dict(options)
        if model:
            kw["model"] = model
        elif name is None and self.model:
            kw["model"] = self.model
        if base_url:
            kw["base_url"] = base_url
        return create_engine(engine_name, **kw)

    def role_model(self, role: str) -> tuple[str, str | None]:
        """(engine name, model or None for the default) of a role, for the dry run."""
        name, model = (
            (self.response_engine, self.response_model)
            if role == "answers"
            else (self.judge_engine, self.judge_model)
            if role == "judge"
            else (None, None)
        )
        if name is None and model is None:
            return self.engine_name, self.model
        return (name or self.engine_name), (model or (self.model if name is None else None))

    def response_config(self) -> DispatchConfig | None:
        """The response engine's own limits, when any was given."""
        return self.role_config("response")

    def judge_config(self) -> DispatchConfig | None:
        """The judge engine's own limits, when any was given."""
        return self.role_config("judge")

    def role_config(self, prefix: str) -> DispatchConfig | None:
        """The run's limits with those given as ``--PREFIX-concurrency/-rpm/-tpm`` in their
        place; ``None`` when none was given."""
        import dataclasses

        given: dict[str, Any] = {
            k: getattr(self, f"{prefix}_{k}")
            for k in ("concurrency", "rpm", "tpm")
            if getattr(self, f"{prefix}_{k}") is not None
        }
        if not given:
            return None
        return dataclasses.replace(self.dispatch_config(), **given)

    def role_engine_given(self) -> bool:
        return any(
            v is not None
            for v in (
                self.response_engine,
                self.response_model,
                self.response_base_url,
                self.judge_engine,
                self.judge_model,
                self.judge_base_url,
            )
        )

    def judge_filter_options(self) -> dict[str, dict[str, Any]]:
        return (
            {}
            if self.judge_threshold is None
            else {"llm-judge": {"threshold": self.judge_threshold}}
        )

    def dispatch_config(self) -> DispatchConfig:
        from instructgen.dispatch import DispatchConfig

        return DispatchConfig(
            concurrency=self.concurrency,
            rpm=self.rpm,
            tpm=self.tpm,
            timeout=self.timeout,
            max_cost=self.max_cost,
            max_reply_bytes=self.max_reply_bytes,
            prompts_per_request=self.prompts_per_request,
            batch=self.batch_config(),
            hedge=self.hedge_after != "off",
            hedge_after=self.hedge_after if isinstance(self.hedge_after, float) else None,
        )

    def batch_config(self) -> Any:
        if not self.batch:
            return None
        from instructgen.batching import BatchConfig

        return BatchConfig(
            fallback=self.batch_fallback,  # type: ignore[arg-type]
            poll_interval=self.batch_poll,
            poll_max=max(self.batch_poll, 300.0),
        )

    def cache_dir(self) -> Path | None:
        """The run's cache folder (``--out``), or ``None`` with ``--no-cache``."""
        if self.no_cache or self.out is None:
            return None
        return self.out


def prompts_per_request(engine_class: type[Engine], opts: RunOptions) -> int:
    """How many prompts one request carries at most in this run (1 on engines that take one)."""
    return max(1, min(opts.prompts_per_request, engine_class.max_prompts_per_request))


def list_note(per_request: int) -> str:
    """What a dry run adds to its request count on an engine that takes several prompts."""
    if per_request <= 1:
        return ""
    return f", up to {per_request} of them in one request (--prompts-per-request)"


def record_totals(report: dict[str, Any], out: Path) -> None:
    """Add ``totals`` to ``report`` (in place, before the dataset and run.json are written):
    this invocation's figures plus those of the run.json it replaces in ``out``."""
    from instructgen.run_totals import add_totals, read_run_json

    report["totals"] = add_totals(report, read_run_json(out / "run.json"))


def finish_run(
    dataset: InstructionDataset,
    out: Path,
    fmt: str | None,
    *,
    as_json: bool,
    summary: Callable[[dict[str, Any], str | None], dict[str, Any]],
    line: Callable[[dict[str, Any], str | None], str],
    empty: str,
) -> None:
    """How ``generate`` and ``from-dir`` end a run: the totals over every invocation added to
    the report, the dataset saved in ``out`` (and exported as ``fmt``), run.json written, then
    the summary — ``summary(report, exported)`` as JSON with ``--json``, else the line
    ``line(report, exported)`` — and exit 1 with ``error: no examples were produced; EMPTY``
    when the dataset is empty."""
    from instructgen import plugins
    from instructgen.atomic import write_json_atomic
    from instructgen.cli._common import EXIT_FAILED, emit_json

    report = dataset.run_report
    record_totals(report, out)  # before the save: metadata.json carries them too
    dataset.save(out)
    exported = None
    if fmt is not None:
        ext = plugins.exporters().get(fmt).extension
        exported = str(dataset.export(fmt, out / f"dataset.{ext}"))
    report["output"] = {"dir": str(out), "exported": exported}
    write_json_atomic(out / "run.json", report)
    if as_json:
        emit_json(summary(report, exported))
    else:
        click.echo(line(report, exported))
    if len(dataset) == 0:
        click.echo(f"error: no examples were produced; {empty}", err=True)
        click.get_current_context().exit(EXIT_FAILED)


def record_unfinished(out: Path, renderer: ProgressRenderer) -> None:
    """An invocation that ends early (Ctrl-C, a budget, an unreachable server) writes no run
    report, but what it paid is part of the run: its figures are added to ``totals`` in
    ``out``'s run.json (the rest of an earlier run.json is kept as it was), so that the rerun
    that resumes counts them. Nothing is written when nothing was paid or ``out`` does not
    exist."""
    from instructgen.atomic import write_json_atomic
    from instructgen.run_totals import add_totals, read_run_json

    spent = renderer.spent()
    if not spent["requests_completed"] or not out.is_dir():
        return
    previous = read_run_json(out / "run.json")
    report = dict(previous or {"pipeline": None})
    report["totals"] = add_totals({"requests": spent, "timings": {}}, previous)
    report["unfinished_invocations"] = int(report.get("unfinished_invocations") or 0) + 1
    write_json_atomic(out / "run.json", report)


_DISPATCH_STAGES = ("requests", "questions")


def spending_summary(report: dict[str, Any]) -> str:
    """The summary line's requests, tokens and cost: this invocation's, and after a resume
    the whole run's too ("$0.00 this time; $0.062 in all over 2 runs: ...")."""
    from instructgen.run_totals import dispatch_stats, invocation_figures

    stats = dispatch_stats(report)
    sent, failed, cached, prompts, hedges = (
        sum(s.get(k, 0) for s in stats)
        for k in (
            "requests_sent",
            "requests_failed",
            "requests_cached",
            "prompts_sent",
            "hedges_sent",
        )
    )
    now = invocation_figures(report)
    listed = f" ({prompts} prompts)" if prompts > sent else ""
    this = (
        f"{sent} requests sent{listed}"
        + hedges_summary(hedges)
        + (f" ({failed} failed)" if failed else "")
        + f", {cached} cached, "
        f"{now['prompt_tokens'] + now['completion_tokens']:,} tokens, "
        f"{format_usd(now['cost_usd'])}"
    )
    totals = report.get("totals") or now
    if totals["invocations"] <= 1:
        return this
    return (
        f"{this} this time; {format_usd(totals['cost_usd'])} in all over "
        f"{totals['invocations']} runs: {totals['requests_paid']:,} requests paid, "
        f"{totals['prompt_tokens'] + totals['completion_tokens']:,} tokens, "
        f"{_duration(totals['elapsed_s'])}"
    )


def hedges_summary(hedges: int) -> str:
    """The summary line's note of the copies sent of late requests (``hedging.py``)."""
    if not hedges:
        return ""
    return f" (+{hedges} {'copy' if hedges == 1 else 'copies'} of late requests)"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class ProgressRenderer:
    """The run's progress for a person: on a terminal one status line, redrawn in place, that
    covers every stage; otherwise (a log, a pipe) one plain line every ``log_every`` seconds
    covering every stage, and the final state when the run ends (a run shorter than one period
    writes nothing). Never a carriage return off a terminal.

    Pipeline stages (``bootstrap``, ``classify``, ``instances``, ``extract``, ...) have fixed
    totals and are shown as ``done/total``; the dispatcher's ``requests`` stage, whose total
    grows as the pipeline finds more work, is shown as a count.
    """

    REDRAW_EVERY = 0.1

    PROJECT_AFTER = 20  # requests answered before the projected cost is shown

    def __init__(
        self,
        enabled: bool = True,
        stream: Any = None,
        log_every: float = 5.0,
        expected_requests: int | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        # With the number of requests a run is expected to send, the line shows the projected
        # total cost once the first requests are answered (their average cost times that number);
        # a directory run's number is known once every file is read.
        self.expected_requests = expected_requests
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.log_every = log_every
        self._stages: dict[str, ProgressEvent] = {}
        # Off a terminal the first line comes after one period: a short run adds no line
        # before its result (the listing of `extract`, the summary of `generate`).
        self._last = float("-inf") if self.tty else time.monotonic()
        self._written = ""  # the last line written
        self._pending = False  # an event arrived since the last line
        self._dirty = False  # a live line is on the terminal
        self.started = time.monotonic()
        self.dispatch: dict[str, ProgressEvent] = {}  # each dispatcher's last report

    def spent(self) -> dict[str, Any]:
        """What the dispatchers reported so far, as run.json's ``requests``: the figures of an
        invocation that ends before its report is written."""
        evs = list(self.dispatch.values())
        done, cached, failed = (
            sum(getattr(e, k) for e in evs) for k in ("done", "cached", "failed")
        )
        return {
            "requests_completed": max(0, done - cached - failed),
            "requests_cached": cached,
            "requests_failed": failed,
            "prompt_tokens": sum(e.prompt_tokens for e in evs),
            "completion_tokens": sum(e.completion_tokens for e in evs),
            "cost_usd": round(sum(e.cost for e in evs), 6),
            "elapsed_s": round(time.monotonic() - self.started, 3),
        }

    def __call__(self, ev: ProgressEvent) -> None:
        if ev.stage in _DISPATCH_STAGES or ev.stage.startswith("requests:"):
            # kept even when quiet: what an unfinished run paid (each engine's dispatcher)
            self.dispatch[ev.stage] = ev
        if not self.enabled:
            return
        self._stages[ev.stage] = ev
        self._pending = True
        now = time.monotonic()
        if now - self._last >= (self.REDRAW_EVERY if self.tty else self.log_every):
            self._write(now)

    def line(self) -> str:
        """The status line for the events seen so far."""
        stages, parts = [], []
        requests = self._stages.get("requests")
        message = None
        for name, ev in self._stages.items():
            if ev is requests:
                continue
            total = f"/{ev.total}" if ev.total else ""
            stages.append(f"{name}: {ev.done}{total}")
            message = ev.message or message
        if stages:
            parts.append(" · ".join(stages))
        if requests is not None:
            detail = [
                f"{n} {what}"
                for n, what in (
                    (requests.cached, "cached"),
                    (requests.failed, "failed"),
                    (requests.retried, "retried"),
                )
                if n
            ]
            parts.append(
                f"{requests.done:,} requests" + (f" ({', '.join(detail)})" if detail else "")
            )
            tokens = requests.prompt_tokens + requests.completion_tokens
            if tokens:
                parts.append(f"{tokens:,} tokens")
            if requests.cost:
                parts.append(format_usd(requests.cost))
                paid = requests.done - requests.cached - requests.failed
                expected = self.expected_requests
                extract = self._stages.get("extract")
                # a directory run: once every file is read, every chunk's request is known
                if (
                    expected is None
                    and extract is not None
                    and requests.total
                    and extract.total
                    and extract.done >= extract.total
                ):
                    expected = requests.total
                if expected and paid >= self.PROJECT_AFTER:
                    remaining = max(0, expected - requests.done)
                    projected = requests.cost + requests.cost / paid * remaining
                    parts.append(f"projected {format_usd(projected)}")
            if requests.eta_s is not None:
                eta = int(requests.eta_s)
                parts.append(f"ETA {eta // 60}m{eta % 60:02d}s")
        if message:
            parts.append(message)
        return " | ".join(parts)

    def _write(self, now: float) -> None:
        self._last, self._pending = now, False
        line = self.line()
        if not line or (line == self._written and not self.tty):
            return
        self._written = line
        if self.tty:
            width = _terminal_columns()
            if len(line) >= width:
                line = line[: max(1, width - 2)] + "…"
            self.stream.write("\r\x1b[2K" + line)
            self._dirty = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """Take the live line off the terminal, so that other output can be written; it is
        drawn again at the next event."""
        if self.tty and self._dirty:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._dirty = False
            self._last = float("-inf")

    def close(self) -> None:
        """Write the final state (off a terminal: if it changed since the last line) and end
        the live line."""
        if not self.enabled:
            return
        if self._pending and (self.tty or self._written):
            self._write(time.monotonic())
        if self.tty and self._dirty:
            self.stream.write("\n")
            self.stream.flush()
            self._dirty = False


def _terminal_columns() -> int:
    """The terminal's width; 80 when it cannot be told or is reported as nonsense (0 columns)."""
    columns = shutil.get_terminal_size(fallback=(80, 24)).columns
    return columns if columns >= 20 else 80

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
from typing import TYPE_CHECKING, Any, TypeVar

import click

from instructgen.limits import DEFAULT_FILE_TIMEOUT, DEFAULT_MAX_BYTES, DEFAULT_MAX_MEMORY_MB
from instructgen.money import format_usd
from instructgen.progress import ProgressEvent

if TYPE_CHECKING:
    from instructgen.dispatch import DispatchConfig
    from instructgen.documents.types import ExtractOptions
    from instructgen.engine_contract import Engine

F = TypeVar("F", bound=Callable[..., Any])

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
        help="API base URL, e.g. a local OpenAI-compatible server "
        "(http://localhost:11434/v1 for Ollama).",
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
        "--tpm",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="Tokens-per-minute limit.",
    ),
    click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=120.0,
        show_default=True,
        help="Seconds to wait for one answer (a server answering nothing for that long "
        "is given up).",
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

size_options = _stack(
    [
        click.option(
            "-n",
            "--num-instructions-for-finetuning",
            "n_examples",
            type=click.IntRange(min=1),
            default=5,
            show_default=True,
            help="Size of the dataset: the number of examples it will hold "
            "(from-dir: with --self-instruct).",
        ),
        click.option(
            "--num-instructions",
            type=click.IntRange(min=1),
            default=10,
            show_default=True,
            help="Cap on the new instructions generated (from-dir: with --self-instruct).",
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
            help="Instructions listed in each bootstrap prompt (from-dir: with --self-instruct).",
        ),
        click.option(
            "--rouge-tokenizer",
            type=click.Choice(["default", "unicode"]),
            default="default",
            show_default=True,
            help="'unicode' for instructions in non-Latin scripts (from-dir: with "
            "--self-instruct).",
        ),
        click.option(
            "--allow-non-ascii",
            is_flag=True,
            help="Keep instructions that start with a non-ASCII character (from-dir: with "
            "--self-instruct).",
        ),
        click.option(
            "--window",
            type=click.IntRange(min=1),
            default=64,
            show_default=True,
            help="Bootstrap requests kept in flight (independent of --concurrency); request i "
            "lists instructions kept before answer i-WINDOW. Part of what the dataset depends "
            "on: the same seed and window give the same dataset at any --concurrency "
            "(from-dir: with --self-instruct).",
        ),
        click.option(
            "--filter",
            "add_filters",
            multiple=True,
            metavar="NAME",
            help="Also run this instruction filter (a plugin's filter that is off by default); "
            "repeatable. See `instructgen plugins` (from-dir: with --self-instruct).",
        ),
        click.option(
            "--no-filter",
            "drop_filters",
            multiple=True,
            metavar="NAME",
            help="Do not run this instruction filter (e.g. rouge, blacklist); repeatable "
            "(from-dir: with --self-instruct).",
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
    batch: bool = False
    batch_fallback: str = "batch"
    batch_poll: float = 10.0

    @classmethod
    def pop_from(cls, kwargs: dict[str, Any]) -> RunOptions:
        names = cls.__dataclass_fields__
        return cls(**{k: kwargs.pop(k) for k in list(names)})

    def build_engine(self) -> Engine:
        from instructgen.engines import create_engine

        kw: dict[str, Any] = {"timeout": self.timeout, **dict(self.engine_options)}
        if self.model:
            kw["model"] = self.model
        if self.base_url:
            kw["base_url"] = self.base_url
        return create_engine(self.engine_name, **kw)

    def dispatch_config(self) -> DispatchConfig:
        from instructgen.dispatch import DispatchConfig

        return DispatchConfig(
            concurrency=self.concurrency,
            rpm=self.rpm,
            tpm=self.tpm,
            timeout=self.timeout,
            max_cost=self.max_cost,
            batch=self.batch_config(),
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

    def cache_path(self) -> Path | None:
        if self.no_cache or self.out is None:
            return None
        return self.out / "cache.sqlite3"


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

    def __call__(self, ev: ProgressEvent) -> None:
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

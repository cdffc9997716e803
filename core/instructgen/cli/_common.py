"""Shared CLI plumbing: one error-to-exit-code policy, logging, JSON output."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click

from instructgen.diskspace import disk_full, is_disk_full
from instructgen.errors import (
    CacheDamagedError,
    DiskFullError,
    InstructgenError,
    MissingKeyError,
    ServerUnreachableError,
    TaskFileError,
)

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if record.levelno >= logging.WARNING:
            return f"instructgen: {record.levelname.lower()}: {record.getMessage()}"
        return f"instructgen: {record.getMessage()}"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes, not the stream it was made
    with: a process that runs several commands (a test suite, a tool embedding the CLI with
    its own stderr for each) gets each command's warnings on that command's stderr."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup_logging(debug: bool) -> None:
    root = logging.getLogger("instructgen")
    if any(getattr(h, "_instructgen", False) for h in root.handlers):
        root.setLevel(logging.DEBUG if debug else logging.WARNING)
        return
    handler = _StderrHandler()
    handler.setFormatter(_Formatter())
    handler._instructgen = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


class Terminated(KeyboardInterrupt):
    """SIGTERM outside an event loop, raised where the program is, as a Ctrl-C would be."""


_terminated = threading.Event()  # SIGTERM was received (exit 143 instead of 130)


def _on_sigterm(signum: int, frame: Any) -> None:
    """Stop as Ctrl-C does: hand the signal to the SIGINT handler in place (inside
    ``asyncio.run`` it cancels the main task, so the run unwinds cleanly)."""
    _terminated.set()
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not signal.default_int_handler:
        handler(signal.SIGINT, frame)
        return
    raise Terminated()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    _terminated.clear()
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def handles_errors(func: F) -> F:
    """Turn typed errors into one clear message on stderr and the contract's exit code; SIGTERM
    stops a command as Ctrl-C does (the message says how to resume), with exit 143."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        debug = bool((ctx.find_root().obj or {}).get("debug"))
        try:
            with _sigterm_as_interrupt():
                return func(*args, **kwargs)
        except (InstructgenError, OSError) as exc:
            if debug:
                raise
            if isinstance(exc, OSError):
                if not is_disk_full(exc):
                    raise
                # a write no writer of ours turned into DiskFullError (a plugin's exporter)
                exc = disk_full("the file", exc.filename or "?", exc)
            as_json = bool(ctx.params.get("as_json"))
            message = exc.command_line_message() if isinstance(exc, MissingKeyError) else str(exc)
            if isinstance(exc, ServerUnreachableError):
                message += f"; resume with: {resume_command(ctx)}"
            elif isinstance(exc, DiskFullError):
                message = message.replace("rerun to resume", f"resume with: {resume_command(ctx)}")
            elif isinstance(exc, CacheDamagedError) and ctx.info_name in ("generate", "from-dir"):
                message += f"; then resume with: {resume_command(ctx)}"
            if as_json:
                payload: dict[str, Any] = {
                    "ok": False,
                    "error": type(exc).__name__,
                    "message": message,
                }
                if isinstance(exc, TaskFileError):
                    payload["problems"] = [str(p) for p in exc.problems]
                if isinstance(exc, ServerUnreachableError):
                    payload.update(
                        host=exc.host,
                        reason=exc.reason,
                        requests_done=exc.done,
                        requests_cached=exc.cached,
                        answers_kept=exc.kept,
                        resume=resume_command(ctx),
                    )
                if isinstance(exc, DiskFullError):
                    payload.update(
                        path=exc.path,
                        free_bytes=exc.free,
                        answers_unsaved=exc.unsaved,
                        resume=resume_command(ctx),
                    )
                emit_json(payload)
            else:
                click.echo(f"error: {message}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            terminated = isinstance(exc, Terminated) or _terminated.is_set()
            what = "terminated" if terminated else "interrupted"
            click.echo(f"{what}: finished requests are cached; rerun to resume", err=True)
            ctx.exit(143 if terminated else 130)
        except BaseException as exc:
            if debug or not _cancelled(exc):
                raise
            # A run cancelled from inside (not by Ctrl-C, which arrives as KeyboardInterrupt):
            # a stopped pipeline's clean-up, never worth a traceback.
            message = (
                "the run was cancelled before it finished; finished requests are cached; "
                f"resume with: {resume_command(ctx)}"
            )
            if ctx.params.get("as_json"):
                emit_json({"ok": False, "error": "CancelledError", "message": message})
            else:
                click.echo(f"error: {message}", err=True)
            ctx.exit(EXIT_FAILED)

    return wrapper  # type: ignore[return-value]


def _cancelled(exc: BaseException) -> bool:
    asyncio = sys.modules.get("asyncio")  # not imported: nothing could have been cancelled
    return asyncio is not None and isinstance(exc, asyncio.CancelledError)


def resume_command(ctx: click.Context) -> str:
    """The command line that was run, to run again: the cache makes it resume."""
    import shlex

    argv = (ctx.find_root().obj or {}).get("argv")
    if argv is None:
        argv = sys.argv[1:]
    return shlex.join(["instructgen", *argv])


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")

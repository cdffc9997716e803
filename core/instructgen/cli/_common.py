"""Shared CLI plumbing: one error-to-exit-code policy, logging, JSON output."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from instructgen.errors import InstructgenError, ServerUnreachableError, TaskFileError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if record.levelno >= logging.WARNING:
            return f"instructgen: {record.levelname.lower()}: {record.getMessage()}"
        return f"instructgen: {record.getMessage()}"


def setup_logging(debug: bool) -> None:
    root = logging.getLogger("instructgen")
    if any(getattr(h, "_instructgen", False) for h in root.handlers):
        root.setLevel(logging.DEBUG if debug else logging.WARNING)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    handler._instructgen = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


def handles_errors(func: F) -> F:
    """Turn typed errors into one clear message on stderr and the contract's exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        debug = bool((ctx.find_root().obj or {}).get("debug"))
        try:
            return func(*args, **kwargs)
        except InstructgenError as exc:
            if debug:
                raise
            as_json = bool(ctx.params.get("as_json"))
            message = str(exc)
            if isinstance(exc, ServerUnreachableError):
                message += f"; resume with: {resume_command(ctx)}"
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
                emit_json(payload)
            else:
                click.echo(f"error: {message}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: finished requests are cached; rerun to resume", err=True)
            ctx.exit(130)

    return wrapper  # type: ignore[return-value]


def resume_command(ctx: click.Context) -> str:
    """The command line that was run, to run again: the cache makes it resume."""
    import shlex

    argv = (ctx.find_root().obj or {}).get("argv")
    if argv is None:
        argv = sys.argv[1:]
    return shlex.join(["instructgen", *argv])


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")

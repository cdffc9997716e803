"""Typed errors. Every error a person can cause or fix carries what they need to fix it.

The CLI maps them to exit codes: ``UsageError`` and its subclasses exit 2 (bad input or usage),
every other ``InstructgenError`` exits 1 (the run failed). Messages never contain API keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ConfigError",
    "ConnectionFailedError",
    "DatasetError",
    "EngineError",
    "ExtractionError",
    "FolderInUseError",
    "InstructgenError",
    "MalformedResponseError",
    "MissingDependencyError",
    "MissingKeyError",
    "OutputFolderError",
    "PluginError",
    "Problem",
    "RateLimitError",
    "ServerUnreachableError",
    "TaskFileError",
    "TransientEngineError",
    "UnknownNameError",
    "UsageError",
]


class InstructgenError(Exception):
    """Base of every error instructgen raises on purpose."""

    exit_code = 1


class UsageError(InstructgenError):
    """Bad input or usage: the user must change something before rerunning (exit 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """A bad option, flag or parameter value."""


class UnknownNameError(UsageError):
    """A name (engine, filter, exporter, ...) that no loaded plugin registered."""

    def __init__(
        self,
        kind: str,
        name: str,
        known: Sequence[str],
        aliases: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.kind, self.name, self.known = kind, name, list(known)
        self.aliases = {k: list(v) for k, v in (aliases or {}).items() if v}
        hint = (
            ", ".join(
                k + (f" (or {', '.join(self.aliases[k])})" if k in self.aliases else "")
                for k in sorted(known)
            )
            or "none registered"
        )
        super().__init__(f"unknown {kind} {name!r}; known: {hint}")


@dataclass(frozen=True)
class Problem:
    """One located problem in an input file: ``FILE:LINE: FIELD: message``."""

    file: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class TaskFileError(UsageError):
    """A seed-task file with one or more problems; ``problems`` lists all of them."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        shown = "\n".join(str(p) for p in self.problems[:50])
        more = len(self.problems) - 50
        if more > 0:
            shown += f"\n... and {more} more problems"
        super().__init__(shown)


class MissingKeyError(UsageError):
    """An engine needs an API key and none was given or found in the environment."""

    def __init__(self, engine: str, env_vars: Sequence[str], hint: str | None = None) -> None:
        self.engine, self.env_vars, self.hint = engine, list(env_vars), hint
        where = f"set {' or '.join(env_vars)} or pass" if env_vars else "pass"
        super().__init__(
            f"engine {engine!r} needs an API key: {where} api_key=..."
            + (f" ({hint})" if hint else "")
        )

    def command_line_message(self) -> str:
        """The message for the command line, which has no ``api_key=``: the environment
        variable to set."""
        if self.env_vars:
            fix = (
                f"set the environment variable {' or '.join(self.env_vars)}, e.g. "
                f"export {self.env_vars[0]}=..."
            )
        else:
            fix = "its plugin names no environment variable for it; see the plugin's documentation"
        return f"engine {self.engine!r} needs an API key: {fix}" + (
            f"; {self.hint}" if self.hint else ""
        )


class MissingDependencyError(UsageError):
    """A plugin's engine, extractor, ... needs Python modules that are not installed here.

    ``reason`` is the fix, e.g. ``needs pip install 'instructgen[cohere]' (missing module:
    cohere)``; the message names what was asked for first."""

    def __init__(self, kind: str, name: str, reason: str) -> None:
        self.kind, self.name, self.reason = kind, name, reason
        super().__init__(f"{kind} {name!r} {reason}")


class PluginError(InstructgenError):
    """A plugin failed to load or raised inside a hook."""

    def __init__(self, plugin: str, message: str) -> None:
        self.plugin = plugin
        super().__init__(f"plugin {plugin!r}: {message}")


class EngineError(InstructgenError):
    """A request an engine could not complete.

    ``retryable`` tells the dispatcher whether another attempt may succeed; ``status`` is the
    HTTP status when there was one; ``retry_after`` is the server's advice in seconds.
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        engine: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.engine, self.status, self.retry_after = engine, status, retry_after
        prefix = f"{engine}: " if engine else ""
        super().__init__(prefix + message)


class TransientEngineError(EngineError):
    """5xx, 408, timeouts, connection resets: worth another attempt after a backoff."""

    retryable = True


class RateLimitError(TransientEngineError):
    """429: the request waits ``retry_after``; ``exhausted`` says the server reported a quota
    at zero (``x-ratelimit-remaining-*: 0``), which slows the whole run down."""

    exhausted = False


class ConnectionFailedError(TransientEngineError):
    """No answer from the server at all: ``reason`` is ``connection refused``, ``host not
    found``, ``timed out``, ``connection reset`` or ``connection failed``. When every request
    fails like this for a while, the dispatcher's circuit breaker stops the run."""

    def __init__(
        self,
        message: str,
        *,
        reason: str = "connection failed",
        engine: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.reason = reason
        super().__init__(message, engine=engine, status=status, retry_after=retry_after)


class MalformedResponseError(TransientEngineError):
    """A reply that does not parse or lacks required fields."""


class AuthenticationError(EngineError):
    """401/403: a wrong key or no access; retrying cannot help."""


class BadRequestError(EngineError):
    """400/404/422: the request or model name is wrong; retrying cannot help."""


class ServerUnreachableError(InstructgenError):
    """Every request failed to connect or timed out for a while: the run stops sending.

    Not an ``EngineError``: pipelines that record failed requests and go on must let this one
    through. Carries what the one-line report needs: the ``host``, the ``reason`` (as in
    ``ConnectionFailedError``), the requests ``done`` in this run (``sent`` answered by the
    server, ``cached`` read from the cache), the answers ``kept`` in the cache (``None``
    without a cache) and for how many ``seconds`` every request failed. The CLI adds the
    command that resumes.
    """

    def __init__(
        self,
        *,
        host: str,
        reason: str,
        sent: int,
        cached: int,
        kept: int | None,
        seconds: float,
        engine: str | None = None,
    ) -> None:
        self.host, self.reason, self.engine = host, reason, engine
        self.sent, self.cached, self.kept, self.seconds = sent, cached, kept, seconds
        self.done = sent + cached
        if kept is None:
            store = "no cache: a rerun sends them again"
        else:
            store = f"{kept} answers kept in the cache"
        super().__init__(
            f"cannot reach {host}: {reason} (every request failed for {seconds:.0f} s); "
            f"stopped after {self.done} requests done ({sent} answered, {cached} from the "
            f"cache), {store}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_unreachable, (self.__dict__.copy(),))


def _rebuild_unreachable(state: dict[str, Any]) -> ServerUnreachableError:
    keys = ("host", "reason", "sent", "cached", "kept", "seconds", "engine")
    return ServerUnreachableError(**{k: state[k] for k in keys})


class BudgetExceededError(InstructgenError):
    """Sending more would exceed ``--max-cost``; what was done is cached and a rerun resumes."""


class ExtractionError(InstructgenError):
    """A document could not be read; directory runs skip the file and record this reason.

    ``final=True`` says no other extractor can do better (an encrypted file, an e-mail that
    parsed and has no text body): the next extractor for the format is not tried.
    """

    def __init__(self, path: str, reason: str, *, final: bool = False) -> None:
        self.path, self.reason, self.final = path, reason, final
        super().__init__(f"{path}: {reason}")


class DatasetError(UsageError):
    """A dataset folder or file that cannot be loaded or exported."""


class OutputFolderError(UsageError):
    """An output folder instructgen may not write: a file, a folder of other files, read-only."""


class FolderInUseError(UsageError):
    """Another process is writing the same output folder or cache database."""

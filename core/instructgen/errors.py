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
    "CacheDamagedError",
    "ConfigError",
    "ConnectionFailedError",
    "DatasetError",
    "DiskFullError",
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
    "ReplyTooLargeError",
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


class ReplyTooLargeError(EngineError):
    """A reply larger than the limit on a reply's size (``--max-reply-bytes``,
    ``DispatchConfig.max_reply_bytes``): reading stopped at the limit, nothing was cached.

    ``limit`` is the limit in bytes; ``received`` the bytes declared (``Content-Length``) or
    read when reading stopped (``partial``: the reply was longer still).

    Not retried: a reply is paid for by its size, and the same request gets a reply of the
    same size again (a model writing up to ``max_tokens``, or a server sending what it always
    sends), so another attempt would pay twice for the same refusal. The other requests go
    on; a rerun with a higher limit sends only the refused ones (the others are cached).
    """

    def __init__(
        self,
        limit: int,
        *,
        received: int | None = None,
        partial: bool = False,
        engine: str | None = None,
        status: int | None = None,
    ) -> None:
        self.limit, self.received, self.partial = limit, received, partial
        if partial:
            what = f"reply larger than the limit of {_bytes(limit)} (reading stopped there)"
        elif received is not None:
            what = f"reply of {_bytes(received)}, larger than the limit of {_bytes(limit)}"
        else:
            what = f"reply larger than the limit of {_bytes(limit)}"
        super().__init__(
            f"{what}; not retried: raise the limit with --max-reply-bytes "
            "(Python: DispatchConfig(max_reply_bytes=...))",
            engine=engine,
            status=status,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_too_large,
            (self.limit, self.received, self.partial, self.engine, self.status),
        )


def _rebuild_too_large(
    limit: int, received: int | None, partial: bool, engine: str | None, status: int | None
) -> ReplyTooLargeError:
    return ReplyTooLargeError(
        limit, received=received, partial=partial, engine=engine, status=status
    )


def _bytes(n: int) -> str:
    """65536 -> '65,536 bytes'; 4194304 -> '4 MiB'; 1234567 -> '1.18 MiB'."""
    if n < 1024 * 1024:
        return f"{n:,} bytes"
    return f"{n / 1024 / 1024:.3g} MiB"


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


class DiskFullError(InstructgenError):
    """A write failed because the disk (or the quota, or the file-size limit) is full: the run
    stops sending requests at once. ``what`` was being written to ``path``; ``free`` is the
    space left on that disk when it happened (``None`` when it cannot be told). ``unsaved``
    counts the answers received that could not be stored (a rerun asks for them again); it
    grows while the requests in flight finish, so the message is made when it is shown. The
    CLI adds the command that resumes."""

    def __init__(self, what: str, path: str, *, free: int | None = None, reason: str = "") -> None:
        self.what, self.path, self.free, self.reason = what, path, free, reason or "disk full"
        self.unsaved = 0
        super().__init__(what, path)

    def __str__(self) -> str:
        free = "" if self.free is None else f", {_size(self.free)} free there"
        if self.unsaved:
            kept = (
                f"{self.unsaved} answers received could not be stored (a rerun asks for them "
                "again); the others are in the cache"
            )
        else:
            kept = "every answer received is kept in the cache"
        return (
            f"disk full: cannot write {self.what} {self.path} ({self.reason}{free}); "
            f"stopped sending requests, {kept}; free some space, then rerun to resume"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_disk_full, (self.__dict__.copy(),))


def _rebuild_disk_full(state: dict[str, Any]) -> DiskFullError:
    error = DiskFullError(state["what"], state["path"], free=state["free"], reason=state["reason"])
    error.unsaved = state["unsaved"]
    return error


def _size(n: int) -> str:
    """Bytes for a person: ``0 B``, ``812 B``, ``2.9 MB``."""
    if n < 1000:
        return f"{n} B"
    size = float(n)
    for unit in ("KB", "MB", "GB"):
        size /= 1000
        if size < 1000:
            return f"{size:.1f} {unit}"
    return f"{size / 1000:.1f} TB"


class CacheDamagedError(UsageError):
    """A cache database whose pages are damaged (SQLite: "database disk image is malformed",
    "file is not a database"), found when it was opened or used: exit 2, as a rerun alone
    cannot help. ``what`` names the cache, ``path`` its file, ``detail`` SQLite's words;
    ``unsaved`` counts the answers received that could not be stored in it (it grows while
    the requests in flight finish)."""

    def __init__(self, what: str, path: str, detail: str) -> None:
        self.what, self.path, self.detail = what, path, detail
        self.unsaved = 0
        super().__init__(what, path, detail)

    def __str__(self) -> str:
        lost = ""
        if self.unsaved:
            lost = f"; {self.unsaved} answers received could not be stored in it"
        return (
            f"{self.what} {self.path} is damaged ({self.detail}){lost}: keep what is readable "
            f"in it with `instructgen cache repair {self.path}` (the damaged file is kept "
            "beside it), or move it aside, or rerun with --no-cache"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_damaged, (self.__dict__.copy(),))


def _rebuild_damaged(state: dict[str, Any]) -> CacheDamagedError:
    error = CacheDamagedError(state["what"], state["path"], state["detail"])
    error.unsaved = state["unsaved"]
    return error


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

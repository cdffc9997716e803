"""Turning transport and HTTP failures into the typed errors the dispatcher acts on.

Provider-neutral: engine plugins catch their SDK's status errors and call ``from_status``; for
everything else (timeouts, resets, bodies that do not parse) they call ``from_exception``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from instructgen.errors import (
    AuthenticationError,
    BadRequestError,
    ConnectionFailedError,
    EngineError,
    MalformedResponseError,
    RateLimitError,
    ReplyTooLargeError,
    TransientEngineError,
)

__all__ = [
    "connection_reason",
    "from_exception",
    "from_status",
    "quota_exhausted",
    "redact",
    "retry_after_from_headers",
]

_DURATION = re.compile(
    r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?"
    r"(?:(\d+(?:\.\d+)?)ms)?$"
)


def _duration(value: str) -> float | None:
    """'1.5', '20ms', '6m0s', '1h2m3s' → seconds."""
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    m = _DURATION.match(value)
    if not m or not any(m.groups()):
        return None
    h, mi, s, ms = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + s + ms / 1000


def retry_after_from_headers(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait, from ``Retry-After`` / ``retry-after-ms`` / ``x-ratelimit-reset-*``."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lower:
        d = _duration(lower["retry-after-ms"])
        if d is not None:
            return d / 1000
    if "retry-after" in lower:
        d = _duration(lower["retry-after"])
        if d is not None:
            return d
        try:
            from datetime import datetime, timezone

            when = parsedate_to_datetime(lower["retry-after"])
            return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
        except (TypeError, ValueError):
            pass
    resets = [
        _duration(lower[k])
        for k in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens", "x-ratelimit-reset")
        if k in lower
    ]
    found = [r for r in resets if r is not None]
    return max(found) if found else None


# How providers word a 429 that is about money, not load (OpenAI's insufficient_quota).
_NO_CREDIT = ("insufficient_quota", "exceeded your current quota", "check your plan and billing")


def quota_exhausted(headers: Mapping[str, str] | None) -> bool:
    """True when ``x-ratelimit-remaining-requests`` / ``-tokens`` (or a bare
    ``x-ratelimit-remaining``) says nothing is left: a real quota, not a busy server."""
    if not headers:
        return False
    for k, v in headers.items():
        if k.lower().startswith("x-ratelimit-remaining"):
            try:
                if float(str(v).strip()) <= 0:
                    return True
            except ValueError:
                continue
    return False


def from_status(
    status: int,
    message: str,
    *,
    engine: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> EngineError:
    message = (message or f"HTTP {status}").strip()[:500]
    retry_after = retry_after_from_headers(headers)
    kw: dict[str, Any] = {"engine": engine, "status": status, "retry_after": retry_after}
    if status == 429:
        if any(m in message.lower() for m in _NO_CREDIT):
            # Billing, not load: waiting will not help.
            error = RateLimitError(
                f"HTTP 429: {message} — the account has no credit left: check the plan and billing",
                **kw,
            )
            error.retryable = False
            return error
        error = RateLimitError(f"rate limited (HTTP 429): {message}", **kw)
        error.exhausted = quota_exhausted(headers)
        return error
    if status in (401, 403):
        return AuthenticationError(
            f"HTTP {status}: {message} — check the API key and that it may use this model", **kw
        )
    if status in (408, 409, 425) or status >= 500:
        return TransientEngineError(f"HTTP {status}: {message}", **kw)
    return BadRequestError(f"HTTP {status}: {message}", **kw)


# HTTP libraries' names for a connection the server closed mid-request (httpx, aiohttp).
_DISCONNECTED = frozenset(
    {"RemoteProtocolError", "ServerDisconnectedError", "ReadError", "ClientPayloadError"}
)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from, outermost first (SDKs wrap the socket
    error that says what happened in their own types, sometimes misnamed)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(seen) < 20 and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def connection_reason(exc: BaseException) -> str | None:
    """What went wrong on the way to the server, or ``None`` when it is not a connection
    failure: ``connection refused``, ``host not found``, ``connection reset``, ``timed out``
    or ``connection failed``. The innermost cause wins: the OpenAI SDK's aiohttp client
    reports a refused connection as ``ConnectTimeout``."""
    import socket

    chain = _chain(exc)
    for e in reversed(chain):  # innermost first: the socket's own word
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, socket.gaierror):
            return "host not found"
        if isinstance(e, ConnectionResetError | BrokenPipeError | ConnectionAbortedError) or (
            type(e).__name__ in _DISCONNECTED
        ):
            return "connection reset"
    names = [type(e).__name__ for e in chain]
    if any("Timeout" in n for n in names) or any(isinstance(e, TimeoutError) for e in chain):
        return "timed out"
    mods = [type(e).__module__ for e in chain]
    if any(m.startswith(("httpx", "httpcore", "aiohttp", "openai", "ssl")) for m in mods) or any(
        isinstance(e, ConnectionError | OSError) for e in chain
    ):
        return "connection failed"
    return None


def from_exception(exc: BaseException, *, engine: str | None = None) -> EngineError:
    """Classify a non-HTTP failure: no connection is ``ConnectionFailedError`` (with its
    reason), bad bodies are malformed; both are worth another attempt. A reply stopped by the
    reply-size limit is ``ReplyTooLargeError`` however the SDK wrapped it (not retried)."""
    too_large = next((e for e in _chain(exc) if isinstance(e, ReplyTooLargeError)), None)
    if too_large is not None:  # stopped by the reply-size limit, maybe wrapped by an SDK
        if too_large.engine is None and engine is not None:
            return ReplyTooLargeError(
                too_large.limit,
                received=too_large.received,
                partial=too_large.partial,
                engine=engine,
                status=too_large.status,
            )
        return too_large
    if isinstance(exc, EngineError):
        return exc
    name = type(exc).__name__
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError) or name == "ValidationError":
        return MalformedResponseError(f"malformed response: {name}: {exc}"[:500], engine=engine)
    reason = connection_reason(exc)
    if reason == "timed out":
        return ConnectionFailedError(
            f"timed out ({name})", reason=reason, engine=engine, status=408
        )
    if reason is not None:
        message = f"{reason} ({name}: {exc})"[:500]
        return ConnectionFailedError(message, reason=reason, engine=engine)
    return MalformedResponseError(f"unexpected response ({name}: {exc})"[:500], engine=engine)


def redact(error: EngineError, secret: str | None) -> EngineError:
    """The same error with ``secret`` (an API key a server echoed back) masked in its message."""
    if not secret or secret not in str(error):
        return error
    masked = copy.copy(error)  # keeps the type and its attributes (reason, exhausted, ...)
    masked.args = (str(error).replace(secret, "***"),)
    return masked

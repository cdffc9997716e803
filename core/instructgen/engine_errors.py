"""Turning transport and HTTP failures into the typed errors the dispatcher acts on.

Provider-neutral: engine plugins catch their SDK's status errors and call ``from_status``; for
everything else (timeouts, resets, bodies that do not parse) they call ``from_exception``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from instructgen.errors import (
    AuthenticationError,
    BadRequestError,
    EngineError,
    MalformedResponseError,
    RateLimitError,
    TransientEngineError,
)

__all__ = ["from_exception", "from_status", "redact", "retry_after_from_headers"]

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
        return RateLimitError(f"rate limited (HTTP 429): {message}", **kw)
    if status in (401, 403):
        return AuthenticationError(
            f"HTTP {status}: {message} — check the API key and that it may use this model", **kw
        )
    if status in (408, 409, 425) or status >= 500:
        return TransientEngineError(f"HTTP {status}: {message}", **kw)
    return BadRequestError(f"HTTP {status}: {message}", **kw)


def from_exception(exc: BaseException, *, engine: str | None = None) -> EngineError:
    """Classify a non-HTTP failure: timeouts and resets are transient, bad bodies malformed."""
    if isinstance(exc, EngineError):
        return exc
    name = type(exc).__name__
    mod = type(exc).__module__
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError) or name == "ValidationError":
        return MalformedResponseError(f"malformed response: {name}: {exc}"[:500], engine=engine)
    if "Timeout" in name or isinstance(exc, TimeoutError):
        return TransientEngineError(f"timed out ({name})", engine=engine, status=408)
    if mod.startswith(("httpx", "httpcore", "aiohttp", "openai", "ssl")) or isinstance(
        exc, ConnectionError | OSError
    ):
        return TransientEngineError(f"connection failed ({name}: {exc})"[:500], engine=engine)
    return MalformedResponseError(f"unexpected response ({name}: {exc})"[:500], engine=engine)


def redact(error: EngineError, secret: str | None) -> EngineError:
    """The same error with ``secret`` (an API key a server echoed back) masked in its message."""
    if not secret or secret not in str(error):
        return error
    masked = type(error)(
        str(error).replace(secret, "***"), status=error.status, retry_after=error.retry_after
    )
    masked.engine = error.engine
    return masked

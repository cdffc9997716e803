"""Base URLs: checked up front, and normalised into the endpoint that enters cache keys.

``check_base_url`` rejects what cannot be a server address (no ``http``/``https`` scheme, no
host) with a ``ConfigError`` before any request is sent. ``endpoint`` reduces a base URL to what
identifies the server — scheme, host, port and path, lower-cased where case does not matter,
with the default port spelled out and trailing slashes removed — and drops user names,
passwords, query strings and fragments, where credentials hide.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from instructgen.errors import ConfigError

__all__ = ["api_base_url", "check_base_url", "endpoint", "host_of"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def check_base_url(url: str, *, what: str = "base URL") -> str:
    """``url`` unchanged when it has an http(s) scheme and a host; else a ``ConfigError``."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # raises ValueError on a port that is not a number
    except ValueError as exc:
        raise ConfigError(f"{what} {url!r} is not a URL: {exc}") from None
    del port
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        raise ConfigError(
            f"{what} {url!r} is not a URL: it needs an http:// or https:// scheme and a host, "
            "e.g. http://localhost:8000/v1"
        )
    return url


def api_base_url(url: str, *, add: str | None = None, strip: Sequence[str] = ()) -> str:
    """``url`` as the provider's SDK wants it, where that is unambiguous: a URL with no path
    gets ``add`` (the OpenAI engines: ``http://localhost:11434`` becomes
    ``http://localhost:11434/v1``); a path ending in one of ``strip`` loses it (Cohere's SDK
    adds ``/v2/chat`` itself, so ``.../v1`` and ``.../v2`` go). Any other path is kept as given
    (a proxy's ``/openai/v1``, a gateway's prefix). Checked first (``check_base_url``)."""
    parts = urlsplit(check_base_url(url).strip())
    path = parts.path.rstrip("/")
    for suffix in strip:
        if path.lower().endswith(suffix.lower()):
            path = path[: len(path) - len(suffix)].rstrip("/")
            break
    else:
        if not path and add:
            path = add
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def endpoint(url: str) -> str:
    """``scheme://host:port/path`` of ``url``, normalised; never credentials or a query."""
    parts = urlsplit(check_base_url(url).strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    port = parts.port or _DEFAULT_PORTS[scheme]
    path = "/".join(p for p in parts.path.split("/") if p)
    return f"{scheme}://{host}:{port}/{path}".rstrip("/")


def host_of(url: str | None) -> str | None:
    """``host:port`` of ``url`` for messages (no credentials, no path); ``None`` if not a URL."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return f"{parts.hostname}:{port}" if port else parts.hostname

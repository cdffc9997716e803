"""A cap on the size of one reply, enforced while its body is read.

A server may answer with anything: a 20 MB body, a chunked body that never ends, a gzip bomb.
Read whole, such a reply costs gigabytes of memory before anyone looks at it. Here every byte is
counted as it arrives, and reading stops with ``ReplyTooLargeError`` as soon as a reply passes
the limit, so memory stays bounded whatever the server sends.

- ``max_reply_bytes()`` is the limit in force. The dispatcher sets it for every request from
  ``DispatchConfig.max_reply_bytes`` (``--max-reply-bytes``) with ``reply_size_limit(n)``; it is
  a context variable, so concurrent runs keep their own. Outside a dispatcher it is
  ``DEFAULT_MAX_REPLY_BYTES``.
- ``limit_reply_size(client)`` makes an ``httpx``-style async client (httpx, or the httpx fork
  the OpenAI SDK uses) enforce it: a response hook refuses a ``Content-Length`` above the limit
  before reading anything and wraps the body stream so that it stops at the limit. Bodies in
  gzip or deflate are decompressed here, at most the limit, so the limit holds for what a
  bomb expands to; other encodings (br, zstd) are counted as they arrive on the wire.
- ``capped_lines(chunks, limit)`` splits a stream of JSON lines (a batch API's result file,
  which holds many replies) into lines, none held beyond ``limit`` bytes.

Engine plugins pass their SDK an HTTP client wrapped with ``limit_reply_size``; the dispatcher
also refuses (never caches) a completion whose texts alone exceed the limit, for engines that
do not.
"""

from __future__ import annotations

import contextlib
import re
import sys
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from instructgen.errors import ReplyTooLargeError

if TYPE_CHECKING:
    from instructgen.engine_contract import Completion

__all__ = [
    "DEFAULT_MAX_REPLY_BYTES",
    "capped_lines",
    "custom_id_in",
    "limit_reply_size",
    "max_reply_bytes",
    "reply_size_limit",
]

DEFAULT_MAX_REPLY_BYTES = 4 * 1024 * 1024
"""4 MiB: about 40 times the longest reply a model writes with 32,000 completion tokens of
JSON-escaped text (a real reply is rarely above 100 KB)."""

_LIMIT: ContextVar[int | None] = ContextVar(
    "instructgen_max_reply_bytes", default=DEFAULT_MAX_REPLY_BYTES
)

C = TypeVar("C")


def max_reply_bytes() -> int | None:
    """The most bytes one reply may have here and now (``None``: no limit)."""
    return _LIMIT.get()


@contextlib.contextmanager
def reply_size_limit(limit: int | None) -> Iterator[None]:
    """Replies read inside this block may have at most ``limit`` bytes (``None``: no limit;
    for a file whose lines are capped one by one with ``capped_lines``)."""
    token = _LIMIT.set(limit)
    try:
        yield
    finally:
        _LIMIT.reset(token)


def limit_reply_size(client: C) -> C:
    """``client`` (an ``httpx.AsyncClient`` or compatible) with the reply-size limit enforced
    on every response it reads; returns the same client."""
    hooks: dict[str, list[Any]] = dict(client.event_hooks)  # type: ignore[attr-defined]
    response_hooks = list(hooks.get("response", []))
    if _check_response not in response_hooks:
        response_hooks.append(_check_response)
    hooks["response"] = response_hooks
    client.event_hooks = hooks  # type: ignore[attr-defined]
    return client


async def _check_response(response: Any) -> None:
    """The response hook: refuse a declared size above the limit, cap the body stream."""
    limit = _LIMIT.get()
    if limit is None:
        return
    headers = response.headers
    if getattr(response, "is_stream_consumed", False):  # a transport that read it already
        size = len(response.content)
        if size > limit:
            raise ReplyTooLargeError(limit, received=size)
        return
    declared = headers.get("content-length")
    if declared is not None:
        with contextlib.suppress(ValueError):
            size = int(declared)
            if size > limit:
                raise ReplyTooLargeError(limit, received=size)  # the client closes it
    encodings = [
        e.strip().lower()
        for e in str(headers.get("content-encoding") or "").split(",")
        if e.strip().lower() not in ("", "identity")
    ]
    decoder = None
    if len(encodings) == 1 and encodings[0] in _ZLIB_WBITS:
        # Decompressed here, bounded; the client then passes the bytes through as they are.
        decoder = _Inflater(encodings[0])
        del headers["content-encoding"]
    response.stream = _stream_class(response)(response.stream, limit, decoder)


_ZLIB_WBITS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": 0}


class _Inflater:
    """gzip or deflate, decompressed at most ``room`` bytes at a time (a bomb cannot expand
    past the limit in memory). ``deflate`` is zlib-wrapped or raw, as servers send either."""

    def __init__(self, encoding: str) -> None:
        self.wbits = _ZLIB_WBITS[encoding]
        self.raw_tried = self.wbits != 0
        self.zlib = zlib.decompressobj(self.wbits or zlib.MAX_WBITS)

    def decode(self, data: bytes, room: int) -> bytes:
        """Up to ``room + 1`` bytes of output (one more than fits says it is too large)."""
        try:
            return self.zlib.decompress(data, room + 1)
        except zlib.error:
            if self.raw_tried:
                raise
            self.raw_tried = True
            self.zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            return self.zlib.decompress(data, room + 1)

    def overflowed(self) -> bool:
        return bool(self.zlib.unconsumed_tail)

    def flush(self) -> bytes:
        return self.zlib.flush()


_STREAM_CLASSES: dict[type, type] = {}


def _stream_class(response: Any) -> type:
    """The capped stream, subclassing the response's own library's ``AsyncByteStream`` (httpx
    and the OpenAI SDK's httpx fork each check for theirs): found among the body stream's
    bases, else in the response's package."""
    found = [c for c in type(response.stream).__mro__ if c.__name__ == "AsyncByteStream"]
    if found:
        base: type = found[0]
    else:
        base = sys.modules[type(response).__module__.split(".")[0]].AsyncByteStream
    cls = _STREAM_CLASSES.get(base)
    if cls is None:
        cls = type("CappedByteStream", (_CappedStream, base), {})
        _STREAM_CLASSES[base] = cls
    return cls


class _CappedStream:
    """Yields the body as it arrives and raises ``ReplyTooLargeError`` at the first byte past
    the limit, counting decompressed bytes when it decompresses."""

    def __init__(self, inner: Any, limit: int, decoder: _Inflater | None) -> None:
        self.inner, self.limit, self.decoder = inner, limit, decoder
        self.seen = 0

    def _count(self, data: bytes) -> bytes:
        self.seen += len(data)
        if self.seen > self.limit:
            raise ReplyTooLargeError(self.limit, received=self.seen, partial=True)
        return data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        decoder = self.decoder
        async for chunk in self.inner:
            if decoder is None:
                yield self._count(chunk)
                continue
            try:
                out = decoder.decode(chunk, self.limit - self.seen)
            except zlib.error as exc:
                raise ValueError(f"reply body does not decompress: {exc}") from None
            if decoder.overflowed():
                raise ReplyTooLargeError(self.limit, received=self.limit + 1, partial=True)
            if out:
                yield self._count(out)
        if decoder is not None:
            tail = decoder.flush()
            if tail:
                yield self._count(tail)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def capped_lines(
    chunks: AsyncIterable[bytes], limit: int | None
) -> AsyncIterator[tuple[bytes, bool]]:
    """The lines of a stream of bytes, without their line ends, as ``(line, True)``; a line
    longer than ``limit`` bytes comes as ``(its first 4 KiB, False)`` and the rest of it is
    read past, never held. ``limit=None``: no limit."""
    buffer = bytearray()
    oversized = False  # skipping the rest of a line already reported
    head = b""
    async for chunk in chunks:
        start = 0
        while start < len(chunk):
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            start = len(chunk) if end < 0 else end + 1
            if not oversized:
                buffer += piece
                if limit is not None and len(buffer) > limit:
                    oversized, head = True, bytes(buffer[:4096])
                    buffer.clear()
            if end >= 0:
                if oversized:
                    yield head, False
                    oversized, head = False, b""
                else:
                    yield bytes(buffer.rstrip(b"\r")), True
                    buffer.clear()
    if oversized:
        yield head, False
    elif buffer:
        yield bytes(buffer.rstrip(b"\r")), True


_CUSTOM_ID = re.compile(rb'"custom_id"\s*:\s*"((?:[^"\\]|\\.){1,512})"')


def custom_id_in(head: bytes) -> str | None:
    """The ``custom_id`` a batch result line starts with (for a line too long to parse)."""
    m = _CUSTOM_ID.search(head)
    if m is None:
        return None
    import json

    try:
        value = json.loads(b'"' + m.group(1) + b'"')
    except ValueError:
        return None
    return str(value)


def check_reply_size(completion: Completion, limit: int, engine: str) -> None:
    """Refuse a completion whose texts alone pass the reply-size limit: the last guard, for
    engines whose HTTP client does not enforce the limit while reading (they were read whole
    already, but are never cached). Characters are counted: never more than the bytes."""
    size = sum(len(t) for t in completion.texts)
    if size > limit:
        raise ReplyTooLargeError(limit, engine=engine)

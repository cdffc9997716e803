"""The extraction cache — extracted text by file content and the installed extractors, in
SQLite — and a directory run's extraction bookkeeping around it (``ExtractionRun``)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import instructgen.plugins as plugins
from instructgen.documents.discovery import Found
from instructgen.documents.routing import is_slow
from instructgen.documents.types import (
    NOT_FINISHED,
    ExtractResult,
    printable_name,
    skipped,
)
from instructgen.errors import CacheDamagedError
from instructgen.executor import ReadJob
from instructgen.registry import MISSING_REQUIREMENT
from instructgen.store import SQLiteStore

__all__ = [
    "CACHE_VERSION",
    "ExtractCache",
    "ExtractionRun",
    "as_reported",
    "cache_key",
    "result_from_cache",
    "result_to_cache",
    "store_result",
]

CACHE_VERSION = "4"  # 2: OCR small print, docx text boxes, slide order; 3: attachments;
# 4: docx list numbers, JSON as text values, UTF-16 e-mails read as e-mails

log = logging.getLogger("instructgen.documents")


class ExtractCache(SQLiteStore):
    """Extracted text by content hash (plus the extractor set), in SQLite."""

    table = "extracted"
    what = "the extraction cache"
    schema = "CREATE TABLE IF NOT EXISTS extracted (key TEXT PRIMARY KEY, value TEXT NOT NULL)"

    damaged: CacheDamagedError | None = None

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored result, or ``None``. A damaged cache is a warning, once, and is not
        used any further: reading the files again costs no request."""
        if self.damaged is not None:
            return None
        try:
            value = self._read(key)
        except CacheDamagedError as exc:
            self._give_up(exc)
            return None
        return json.loads(value) if value is not None else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        if self.damaged is not None:
            return
        data = json.dumps(value, ensure_ascii=False)
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates (from a file name): store them escaped
            data = json.dumps(value)
        try:
            self._write(("key", "value"), (key, data))
        except CacheDamagedError as exc:
            self._give_up(exc)

    def _give_up(self, exc: CacheDamagedError) -> None:
        self.damaged = exc
        log.warning("%s; files are read again without it", exc)


def _fingerprint() -> str:
    """The installed extractors: name, plugin and its distribution's version, so that
    installing, removing or upgrading an extractor plugin re-reads the files (``CACHE_VERSION``
    changes when the built-in extractors' output does)."""
    versions = {i.name: i.version for i in plugins.plugin_infos()}
    names = sorted(f"{e.name}:{e.plugin}:{versions.get(e.plugin)}" for e in plugins.extractors())
    return hashlib.sha256(("|".join(names) + CACHE_VERSION).encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_key(f: Found, fingerprint: str | None = None) -> str | None:
    """The extraction-cache key of a file: its content hash and the installed extractors
    (``fingerprint``, computed when not given; None when the file cannot be read: extraction
    then reports why)."""
    try:
        return f"{_sha256(f.path)}:{fingerprint or _fingerprint()}"
    except OSError:
        return None


def result_from_cache(hit: dict[str, Any], f: Found) -> ExtractResult:
    return ExtractResult(
        **{**hit, "rel": f.rel, "path": str(f.path), "cached": True, "resolved": f.real}
    )


_NOT_CACHED = ("rel", "path", "cached", "resolved", "chunks")


def result_to_cache(res: ExtractResult) -> dict[str, Any] | None:
    """What to store for a result; None for outcomes worth retrying next run (timeouts, the
    memory limit: a rerun may allow more; a reader whose extra was not installed yet)."""
    if (res.skip or "").startswith((*NOT_FINISHED, MISSING_REQUIREMENT)):
        return None
    # shallow: asdict() deep-copies the metadata, a third of the cost of a cached small file
    return {f.name: getattr(res, f.name) for f in fields(res) if f.name not in _NOT_CACHED}


def as_reported(f: Found, res: ExtractResult) -> ExtractResult:
    """``res`` as runs report it: where ``f``'s links led, and a skip reason with file names
    escaped (a reason can quote one; shown and stored escaped, as names are)."""
    if res.resolved is None:
        res.resolved = f.real
    if res.skip:
        res.skip = printable_name(res.skip)
    return res


def store_result(cache: ExtractCache | None, key: str, res: ExtractResult) -> None:
    """Give a freshly read file's result its content hash (from its cache ``key``) and store
    it in ``cache`` when it is worth keeping (``result_to_cache``)."""
    res.sha256 = key.split(":", 1)[0]
    stored = result_to_cache(res)
    if cache is not None and stored is not None:
        cache.put(key, stored)


def _work_order(found: Sequence[Found], todo: list[int]) -> list[int]:
    """Files whose extractor is ``slow`` (OCR, transcription) first, then larger before
    smaller: started last, one long file would leave the other workers idle at the end."""
    slow: dict[str, bool] = {}

    def key(i: int) -> tuple[bool, int]:
        ext = found[i].path.suffix.lower()
        if ext not in slow:
            slow[ext] = is_slow(ext)
        return (not slow[ext], -found[i].size)

    return sorted(todo, key=key)


class ExtractionRun:
    """The one bookkeeping of a directory run's extraction, lazy enough for a stream: ``known``
    answers discovery skips and extraction-cache hits one at a time, without reading a file
    (a hit's text is read when it is asked for); ``jobs`` lists the files still to read, in
    the order to start them (slow readers and larger files first); ``record`` stores each
    freshly read result in the cache (with its content hash) and returns it as runs report
    it. Nothing is gathered: results are handed on as they come."""

    def __init__(self, found: Sequence[Found], cache: ExtractCache | None = None) -> None:
        self.found, self.cache = found, cache
        self.keys: dict[int, str] = {}
        self._todo: list[int] | None = None

    def known(self) -> Iterator[tuple[int, ExtractResult]]:
        """``(index in found, result)`` of every file answered without reading it."""
        fingerprint = _fingerprint() if self.cache is not None else None
        todo: list[int] = []
        for i, f in enumerate(self.found):
            if f.skip is not None:
                yield i, as_reported(f, skipped(f, f.skip))
                continue
            if self.cache is not None and (key := cache_key(f, fingerprint)) is not None:
                self.keys[i] = key
                hit = self.cache.get(key)
                if hit is not None:
                    yield i, as_reported(f, result_from_cache(hit, f))
                    continue
            todo.append(i)
        self._todo = _work_order(self.found, todo)

    def jobs(self) -> list[ReadJob]:
        """The files ``known`` left to read, in the order to start them."""
        if self._todo is None:
            raise RuntimeError("ExtractionRun.jobs() before known() was consumed")
        return [
            ReadJob(i, str(self.found[i].path), self.found[i].rel, self.found[i].size)
            for i in self._todo
        ]

    def record(self, i: int, res: ExtractResult) -> ExtractResult:
        """A freshly read (or timed-out, or crashed) file: cached when worth it, returned as
        runs report it."""
        if i in self.keys:
            store_result(self.cache, self.keys[i], res)
        return as_reported(self.found[i], res)

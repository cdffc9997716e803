"""The extraction cache — extracted text by file content and the installed extractors, in
SQLite — and the bookkeeping every executor shares around it (``ExtractionRun``)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import instructgen.plugins as plugins
from instructgen.documents.discovery import Found
from instructgen.documents.routing import is_slow
from instructgen.documents.types import (
    NOT_FINISHED,
    ExtractResult,
    crash_reason,
    printable_name,
    skipped,
    timeout_reason,
)
from instructgen.errors import CacheDamagedError
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
    """The bookkeeping every executor shares: results in the order of ``found``, discovery
    skips and extraction-cache hits answered without reading a file, and each new result
    stored in the cache (with its content hash) and reported through ``on_result``.
    ``todo``: the files still to read, in the order to start them (slow ones first)."""

    def __init__(
        self,
        found: Sequence[Found],
        cache: ExtractCache | str | Path | None = None,
        on_result: Callable[[ExtractResult], None] | None = None,
    ) -> None:
        """``cache``: an open ``ExtractCache``, or the path of one, which this run then opens
        and closes (``close()``, or use the run as a context manager); None: no cache."""
        self._owns_cache = isinstance(cache, str | Path)
        if isinstance(cache, str | Path):
            cache = ExtractCache(cache)
        self.found, self.cache, self.on_result = found, cache, on_result
        self.results: list[ExtractResult | None] = [None] * len(found)
        self.keys: dict[int, str] = {}
        self.todo: list[int] = []  # indices of the files still to extract
        fingerprint = _fingerprint() if cache is not None else None
        for i, f in enumerate(found):
            if f.skip is not None:
                self._report(i, skipped(f, f.skip))
                continue
            if cache is not None and (key := cache_key(f, fingerprint)) is not None:
                self.keys[i] = key
                hit = cache.get(key)
                if hit is not None:
                    self._report(i, result_from_cache(hit, f))
                    continue
            self.todo.append(i)
        self.todo = _work_order(found, self.todo)

    def _report(self, i: int, res: ExtractResult) -> None:
        self.results[i] = as_reported(self.found[i], res)
        if self.on_result:
            self.on_result(res)

    def record(self, i: int, res: ExtractResult) -> None:
        """A freshly extracted (or timed-out) file: cache it when worth it, then report it."""
        if i in self.keys:
            store_result(self.cache, self.keys[i], res)
        self._report(i, res)

    def crashed(self, i: int, detail: str | None = None) -> None:
        """File ``i``'s worker died (``detail``: what the executor saw): skipped, not cached."""
        self.record(i, skipped(self.found[i], crash_reason(detail)))

    def timed_out(self, i: int, seconds: float) -> None:
        """File ``i`` went over the per-file time limit: skipped, not cached."""
        self.record(i, skipped(self.found[i], timeout_reason(seconds)))

    def ordered(self) -> list[ExtractResult]:
        return [r for r in self.results if r is not None]

    def close(self) -> None:
        """Close the cache this run opened from a path."""
        if self._owns_cache and self.cache is not None:
            self.cache.close()
            self.cache = None

    def __enter__(self) -> ExtractionRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

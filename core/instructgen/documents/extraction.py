"""Reading a directory's files to text: the extraction cache and run bookkeeping
(``extract_cache``) around the worker pool (``workers``), each file read by the extractor
``routing`` chooses. ``extract_many`` and ``extract_files`` are the entry points."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from instructgen.documents.discovery import Found
from instructgen.documents.extract_cache import ExtractCache, ExtractionRun
from instructgen.documents.routing import extract_one
from instructgen.documents.types import ExtractOptions, ExtractResult
from instructgen.documents.workers import run_pool

__all__ = ["extract_files", "extract_many"]


def extract_many(
    found: Sequence[Found],
    *,
    options: ExtractOptions | None = None,
    cache: ExtractCache | None = None,
    on_result: Callable[[ExtractResult], None] | None = None,
) -> list[ExtractResult]:
    """Extract every found file (in parallel), results in the order of ``found``."""
    options = options or ExtractOptions()
    run = ExtractionRun(found, cache, on_result)
    jobs = [(i, str(found[i].path), found[i].rel, found[i].size) for i in run.todo]
    if options.workers <= 0:
        stream: Iterator[tuple[int, ExtractResult]] = (
            (j[0], extract_one(j[1], j[2], j[3], options.chunk_size)) for j in jobs
        )
    else:
        stream = run_pool(jobs, options)
    for idx, res in stream:
        run.record(idx, res)
    return run.ordered()


def extract_files(
    found: Sequence[Found],
    options: ExtractOptions,
    cache_path: Path | None,
    on_result: Callable[[ExtractResult], None] | None = None,
) -> list[ExtractResult]:
    """``extract_many`` with the extraction cache kept in ``cache_path`` (None: no cache):
    what the local executor does, and what ``scan`` does without an executor."""
    cache = ExtractCache(cache_path) if cache_path else None
    try:
        return extract_many(found, options=options, cache=cache, on_result=on_result)
    finally:
        if cache is not None:
            cache.close()

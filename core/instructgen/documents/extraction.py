"""Reading files to text on this machine: the worker pool (``workers``) or, with no workers,
in this process, each file read by the extractor ``routing`` chooses. ``read_files`` is what
the ``local`` executor supplies to the directory pipeline."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from instructgen.documents.routing import extract_one
from instructgen.documents.types import ExtractOptions, ExtractResult
from instructgen.documents.workers import run_pool
from instructgen.executor import ReadJob

__all__ = ["read_files"]


def read_files(
    jobs: Sequence[ReadJob], options: ExtractOptions, stop: threading.Event | None = None
) -> Iterator[tuple[int, ExtractResult]]:
    """``(job.position, result)`` for every job as it is read: in ``options.workers`` worker
    processes under the per-file limits (started in the order given), or one after another in
    this process when ``options.workers`` is 0. ``stop`` ends reading at once (the workers
    still reading are killed); so does closing the generator."""
    if options.workers > 0:
        yield from run_pool(jobs, options, stop)
        return
    for job in jobs:
        if stop is not None and stop.is_set():
            return
        yield job.position, extract_one(job.path, job.rel, job.size, options.chunk_size)

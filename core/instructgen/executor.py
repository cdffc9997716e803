"""The executor contract: where a directory run's files are read.

A directory run is one streamed pipeline (``documents.stream``): discovery → extraction →
chunks → requests → rows spilled to disk, with bounded hand-overs between the stages. An
executor supplies its extraction stage: it reads the files the extraction cache could not
answer and hands each result back as it is read. The default ``local`` executor
(``runs.LocalExecutor``) reads them in worker processes on this machine; executor plugins
(``register_executors``) read them elsewhere, e.g. on the nodes of a Ray cluster. Requests go
out from the run's own process through its one dispatcher, so concurrency, RPM/TPM limits,
429 handling and the response cache are those of one run whatever reads the files, and the
dataset does not depend on the executor.

What a plugin needs for that is public: ``instructgen.extract_one`` (one file, in any
process), ``instructgen.ReadJob``, ``ExtractOptions`` and ``ExtractResult``.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

if TYPE_CHECKING:
    from instructgen.documents.types import ExtractOptions, ExtractResult

__all__ = ["Executor", "ReadJob"]


class ReadJob(NamedTuple):
    """One file for an executor to read: its position in discovery order (``position``,
    handed back with the result), its absolute ``path``, its path relative to the run's folder
    (``rel``) and its ``size`` in bytes."""

    position: int
    path: str
    rel: str
    size: int


class Executor(ABC):
    name: ClassVar[str] = ""

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abstractmethod
    def read(
        self,
        jobs: Sequence[ReadJob],
        options: ExtractOptions,
        stop: threading.Event,
    ) -> Iterator[tuple[int, ExtractResult]]:
        """Read every file of ``jobs`` (``extract_one(job.path, job.rel, job.size,
        options.chunk_size)``, under the per-file limits of ``options``) and yield ``(job.position,
        result)`` as each file is done, in any order. Start the jobs in the order given (slow
        readers and large files come first) and keep only a bounded number in flight, so memory
        does not grow with the corpus. A file that goes over ``options.timeout`` or whose
        reader dies is yielded as skipped (``instructgen.timeout_reason`` /
        ``crash_reason``), never raised. Once ``stop`` is set, stop the files being read and
        return within a second. Called from a thread of its own; closing the generator early
        must stop whatever is still reading."""

    def close(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Release what the executor holds (cluster connections, ...)."""

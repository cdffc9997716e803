"""The documents' value types: the per-file limits of a run, what reading one file gave, a
chunk of a file's text, and the skip reasons of files a worker did not finish. Plain values,
shared by the extraction machinery, the executors (local, Ray, plugins) and the pipeline."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from instructgen.limits import DEFAULT_FILE_TIMEOUT, DEFAULT_MAX_BYTES, DEFAULT_MAX_MEMORY_MB

if TYPE_CHECKING:
    from instructgen.documents.discovery import Found

__all__ = [
    "CRASHED",
    "NOT_FINISHED",
    "OVER_MEMORY",
    "TIMED_OUT",
    "Chunk",
    "ExtractOptions",
    "ExtractResult",
    "crash_reason",
    "memory_reason",
    "skipped",
    "timeout_reason",
]


@dataclass(frozen=True)
class Chunk:
    """Part ``index`` (of ``total``) of the text read from the file ``rel``."""

    rel: str
    index: int
    total: int
    text: str


@dataclass(frozen=True)
class ExtractOptions:
    """The per-file limits of a directory run, carried as one value from the command line to
    the workers. ``workers`` processes (0: in the calling process, no limits); each file gets
    ``timeout`` seconds (counted from the extractor's last ``report_progress()`` when it calls
    it) and ``max_memory_mb`` megabytes (the worker's own memory plus that of the programs
    it starts, such as tesseract; 0: no limit; enforced where ``/proc`` exists, i.e. Linux);
    files over ``max_bytes`` are skipped unread; a worker is replaced after ``recycle_after``
    files."""

    workers: int = 2
    timeout: float = DEFAULT_FILE_TIMEOUT
    max_memory_mb: int = DEFAULT_MAX_MEMORY_MB
    recycle_after: int = 50
    max_bytes: int = DEFAULT_MAX_BYTES

    def to_report(self) -> dict[str, Any]:
        """The limits as run.json records them."""
        return {
            "file_timeout_s": self.timeout,
            "max_file_bytes": self.max_bytes,
            "max_memory_mb": self.max_memory_mb,
            "workers": self.workers,
        }


@dataclass
class ExtractResult:
    rel: str
    path: str
    size: int = 0
    sha256: str | None = None
    extractor: str | None = None
    text: str | None = None
    skip: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    cached: bool = False

    @property
    def chars(self) -> int:
        return len(self.text or "")

    def to_dict(self, with_text: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not with_text:
            d.pop("text")
        d["chars"] = self.chars
        return d


# Skip reasons of files a worker did not finish. They are not cached (``result_to_cache``): a
# rerun, perhaps with higher limits, tries those files again.
CRASHED = "extraction crashed the worker"
OVER_MEMORY = "over the memory limit"
TIMED_OUT = "timed out"


def timeout_reason(seconds: float, after: float | None = None) -> str:
    """The skip reason of a file that went over the per-file time limit: in all, or (``after``
    seconds in all) since the extractor last reported progress."""
    if after is not None:
        return f"{TIMED_OUT}: no progress for {seconds:g} s (after {after:.0f} s in all)"
    return f"{TIMED_OUT} after {seconds:g} s (--file-timeout allows more)"


def crash_reason(detail: str | None = None) -> str:
    """The skip reason of a file whose worker died (``detail``: what the executor saw)."""
    return f"{CRASHED} ({detail})" if detail else CRASHED


def memory_reason(limit_mb: int) -> str:
    """The skip reason of a file whose worker went over the memory limit of ``limit_mb``."""
    return f"{OVER_MEMORY} ({limit_mb:,} MB)"


NOT_FINISHED = (TIMED_OUT, CRASHED, OVER_MEMORY)
"""Prefixes of the skip reasons above: outcomes a rerun tries again (they are not cached)."""


def skipped(f: Found, why: str) -> ExtractResult:
    """The result of a file that was not read, and why."""
    return ExtractResult(rel=f.rel, path=str(f.path), size=f.size, skip=why)

"""The documents' value types: the per-file limits of a run, what reading one file gave, a
chunk of a file's text, and the skip reasons of files a worker did not finish. Plain values,
shared by the extraction machinery, the executors (local, Ray, plugins) and the pipeline."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from instructgen.limits import DEFAULT_FILE_TIMEOUT, DEFAULT_MAX_BYTES, DEFAULT_MAX_MEMORY_MB

if TYPE_CHECKING:
    from instructgen.documents.discovery import Found


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"  # as prompts write them (documents.qa.safe_name)


def printable_name(name: str) -> str:
    """``name`` with what a terminal, a JSON file or a prompt must not get raw escaped:
    undecodable bytes as ``\\xNN``; control characters (a newline: ``\\u000a``, an escape:
    ``\\u001b``), line separators and bidirectional overrides as ``\\uNNNN``."""
    return name if name.isprintable() else _UNPRINTABLE.sub(_escape, name)


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
    "printable_name",
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
    follow_symlinks: bool = False  # also read where links lead outside the folder
    chunk_size: int | None = None  # also chunk the text in the worker, under the same limits

    def to_report(self) -> dict[str, Any]:
        """The limits as run.json records them."""
        return {
            "file_timeout_s": self.timeout,
            "max_file_bytes": self.max_bytes,
            "max_memory_mb": self.max_memory_mb,
            "workers": self.workers,
            "follow_symlinks": self.follow_symlinks,
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
    resolved: str | None = None  # the file read, symbolic links resolved
    chunks: list[str] | None = None  # chunked in the worker, when asked (not cached)

    @property
    def chars(self) -> int:
        return len(self.text or "")

    def to_dict(self, with_text: bool = False) -> dict[str, Any]:
        d = asdict(self)
        d.pop("chunks")
        if not with_text:
            d.pop("text")
        d["path"] = printable_name(self.path)
        if self.resolved is not None:
            d["resolved"] = printable_name(self.resolved)
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
    return ExtractResult(rel=f.rel, path=str(f.path), size=f.size, skip=why, resolved=f.real)

"""The extractor contract: one file in, its text out.

Extractors run in worker processes (``documents/workers.py``), so ``extract`` is synchronous and
must be importable without side effects. A file that cannot be read raises ``ExtractionError``
with a reason a person understands ("encrypted PDF", "tesseract not installed: apt-get install
..."). An extractor of files that hold other files reads them with ``instructgen.extract_file``
(``documents/routing.py``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

__all__ = ["Extracted", "Extractor", "report_progress"]

_progress: Any = None  # in an extraction worker process: a counter shared with the run


def report_progress() -> None:
    """Tell the run that the file being read is moving: call it from ``extract`` after each
    page OCR'd, stretch of audio transcribed, piece uploaded. The per-file time limit then
    counts from the last report, so a long recording or scan that keeps moving is not cut
    off, while a file that stops moving is stopped as before. Cheap; a no-op outside
    extraction worker processes."""
    counter = _progress
    if counter is not None:
        counter.value += 1


@dataclass
class Extracted:
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


class Extractor(ABC):
    name: ClassVar[str] = ""
    extensions: ClassVar[tuple[str, ...]] = ()
    mime_types: ClassVar[tuple[str, ...]] = ()
    priority: ClassVar[int] = 0
    slow: ClassVar[bool] = False
    """True for extractors that take seconds per file (OCR, transcription): a run starts their
    files first, so it does not end waiting on one of them while the other workers are idle."""
    requires: ClassVar[tuple[str, ...]] = ()
    """Top-level modules ``extract`` imports. Checked without importing them: when one is
    missing, the extractor stays listed as unavailable and its files are skipped with
    ``needs pip install '<install_with>'``."""
    install_with: ClassVar[str] = ""
    """The pip requirement that brings ``requires``, e.g. ``instructgen[documents]``."""

    def unavailable_reason(self) -> str | None:
        """``None`` when usable here, else why not and how to fix it (missing binary, ...)."""
        return None

    def sniff(self, head: bytes) -> bool | None:
        """Whether the first bytes of a file look like a format this extractor reads:
        ``True`` yes, ``False`` no (the extension is probably wrong), ``None`` no opinion.

        Used to route files whose extension is wrong or missing. Default: no opinion.
        """
        return None

    @abstractmethod
    def extract(self, path: Path) -> Extracted:
        """Return the file's text, or raise ``ExtractionError``."""

"""Files attached to e-mails (eml, msg), read the way a run reads a file."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from instructgen import ExtractionError, extract_file

__all__ = ["read_attachments"]


def read_attachments(files: Iterable[tuple[str, bytes]]) -> tuple[list[str], list[dict[str, Any]]]:
    """The text of each attached file, read the way a run reads a file (``extract_file``), as
    "Attachment: NAME" blocks; and per attachment its reader or why it gave no text."""
    texts: list[str] = []
    report: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="instructgen-attachment-") as tmp:
        for i, (name, data) in enumerate(files):
            safe = Path(name.replace("\\", "/")).name.strip() or f"attachment-{i + 1}"
            target = Path(tmp) / str(i) / safe  # the name only: no path from the message
            target.parent.mkdir()
            target.write_bytes(data)
            try:
                out = extract_file(target)
            except ExtractionError as exc:
                report.append({"name": safe, "skip": exc.reason})
                continue
            texts.append(f"Attachment: {safe}\n{out.text.strip()}")
            report.append({"name": safe, "extractor": out.metadata.get("extractor")})
    return texts, report

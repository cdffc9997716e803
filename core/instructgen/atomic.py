"""Writing a file so that readers see the old one or the whole new one, never half of it: write
beside it, then rename over it (``os.replace`` is atomic on one file system). Used for
run.json, the dataset's metadata, reports and every exporter's output; public for exporter
plugins (``instructgen.write_atomic``, ``instructgen.atomic_path``). A write that finds the disk
full raises ``DiskFullError``, the half-written file removed."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from instructgen.diskspace import disk_full, is_disk_full

__all__ = ["atomic_path", "write_atomic", "write_json_atomic"]


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (``.NAME.tmp-PID``) for a writer that needs a file
    name (a library writing Parquet, a folder): renamed over ``path`` when the block ends,
    removed if it raises. Creates the parent folder."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        yield tmp
    except BaseException as exc:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise disk_full("the file", target, exc) from None
        raise
    os.replace(tmp, target)


def write_atomic(path: str | Path, text: str | Iterable[str]) -> Path:
    """Write ``text`` (a string, or pieces of one written as they come) to ``path`` in UTF-8,
    atomically. Returns the path."""
    # a lone surrogate (a file name that is not UTF-8) is written escaped, never an error
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", errors="backslashreplace") as fh:
        if isinstance(text, str):
            fh.write(text)
        else:
            for piece in text:
                fh.write(piece)
    return Path(path)


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """``obj`` as indented JSON (non-ASCII kept, unknown types as ``str``), atomically."""
    return write_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")

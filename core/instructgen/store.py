"""The SQLite set-up both caches share (responses, extracted text): one key → JSON text table
in WAL mode, committed at once, safe to share between the threads of one process.

WAL with ``synchronous=NORMAL`` keeps every committed row across ``kill -9`` (only a power loss
may drop the last ones), which is what resuming a run relies on.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import ClassVar, TypeVar

from instructgen.errors import OutputFolderError
from instructgen.outdir import lock_database

__all__ = ["SQLiteStore"]

S = TypeVar("S", bound="SQLiteStore")


class SQLiteStore:
    """A durable key → text table. Subclasses name the ``table`` and its ``schema`` (the
    ``CREATE TABLE IF NOT EXISTS`` statement, with ``key`` and ``value`` columns) and turn
    values to and from text."""

    table: ClassVar[str]
    schema: ClassVar[str]

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # one writing process per database (FolderInUseError naming the holder), except in the
        # shared user-wide cache folder; its folder is made here, and a read-only database is
        # an OutputFolderError, not a sqlite3 error
        self._writer = lock_database(self.path)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                str(self.path), check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across kill -9
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.execute(self.schema)
        except sqlite3.Error as exc:
            if self._writer is not None:
                self._writer.release()
            raise OutputFolderError(f"cannot open the cache {self.path}: {exc}") from None

    def _read(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT value FROM {self.table} WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else str(row[0])

    def _write(self, columns: tuple[str, ...], values: tuple[object, ...]) -> None:
        marks = ", ".join("?" for _ in values)
        with self._lock:
            self._db.execute(
                f"INSERT OR REPLACE INTO {self.table} ({', '.join(columns)}) VALUES ({marks})",
                values,
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0])

    def __contains__(self, key: object) -> bool:
        with self._lock:
            row = self._db.execute(f"SELECT 1 FROM {self.table} WHERE key = ?", (key,)).fetchone()
        return row is not None

    def close(self) -> None:
        with self._lock:
            self._db.close()
        if self._writer is not None:
            self._writer.release()

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

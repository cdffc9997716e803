"""The SQLite set-up both caches share (responses, extracted text): one key → JSON text table
in WAL mode, committed at once, safe to share between the threads of one process.

WAL with ``synchronous=NORMAL`` keeps every committed row across ``kill -9`` (only a power loss
may drop the last ones), which is what resuming a run relies on.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, TypeVar

from instructgen.diskspace import Reserve, disk_full, is_disk_full
from instructgen.errors import OutputFolderError
from instructgen.outdir import lock_database

__all__ = ["SQLiteStore"]

S = TypeVar("S", bound="SQLiteStore")


class SQLiteStore:
    """A durable key → text table. Subclasses name the ``table`` and its ``schema`` (the
    ``CREATE TABLE IF NOT EXISTS`` statement, with ``key`` and ``value`` columns) and turn
    values to and from text.

    A write that finds the disk full raises ``DiskFullError`` (see ``diskspace``). A store
    with ``reserve_bytes`` keeps that much space on its disk while it is open (``PATH.reserve``)
    and gives it back at that moment: the write is tried once more in the room it made, so the
    value in hand is kept, and so are the next ones (the answers still in flight)."""

    table: ClassVar[str]
    schema: ClassVar[str]
    what: ClassVar[str] = "the cache"
    reserve_bytes: ClassVar[int] = 0

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # one writing process per database (FolderInUseError naming the holder), except in the
        # shared user-wide cache folder; its folder is made here, and a read-only database is
        # an OutputFolderError, not a sqlite3 error
        self._writer = lock_database(self.path)
        self._lock = threading.Lock()
        self._reserve: Reserve | None = None
        try:
            if self.reserve_bytes and self._writer is not None:  # not in the shared folder
                reserve = self.path.with_name(self.path.name + ".reserve")
                self._reserve = Reserve(reserve, self.reserve_bytes, what=self.what).take()
            self._db = sqlite3.connect(
                str(self.path), check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across kill -9
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.execute(self.schema)
        except BaseException as exc:
            if self._reserve is not None:
                self._reserve.release()
            if self._writer is not None:
                self._writer.release()
            if is_disk_full(exc):
                raise disk_full(self.what, self.path, exc) from None
            if isinstance(exc, sqlite3.Error):
                raise OutputFolderError(f"cannot open the cache {self.path}: {exc}") from None
            raise

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Turn a write that found the disk full into ``DiskFullError``."""
        try:
            yield
        except sqlite3.Error as exc:
            if not is_disk_full(exc):
                raise
            raise disk_full(self.what, self.path, exc) from None

    def _read(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT value FROM {self.table} WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else str(row[0])

    def _write(self, columns: tuple[str, ...], values: tuple[object, ...]) -> None:
        """Store one row. On a full disk every dispatcher of the process is halted (see
        ``diskspace.disk_full``) and, when this store held a reserve, the row is stored in the
        room its release made: the call returns as if nothing happened, the row kept.
        ``DiskFullError`` means the row was not stored."""
        marks = ", ".join("?" for _ in values)
        sql = f"INSERT OR REPLACE INTO {self.table} ({', '.join(columns)}) VALUES ({marks})"
        with self._lock:
            try:
                self._db.execute(sql, values)
                return
            except sqlite3.Error as exc:
                if not is_disk_full(exc):
                    raise
                had_room = self._reserve is not None and self._reserve.held
                error = disk_full(self.what, self.path, exc)  # gives every reserve back
                if not had_room:
                    raise error from None
            try:
                self._db.execute(sql, values)
            except sqlite3.Error as again:
                if not is_disk_full(again):
                    raise
                raise error from None

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
        if self._reserve is not None:
            self._reserve.release()
        if self._writer is not None:
            self._writer.release()

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

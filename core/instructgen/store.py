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
from instructgen.errors import CacheDamagedError, DiskFullError, OutputFolderError
from instructgen.outdir import lock_database

__all__ = ["SQLiteStore", "is_damage"]

S = TypeVar("S", bound="SQLiteStore")

_DAMAGE_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB (extended codes keep them in the low byte)


def is_damage(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite finding a database's pages damaged."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _DAMAGE_CODES
    text = str(exc)  # pragma: no cover - Python 3.10 has no error codes
    return "malformed" in text or "not a database" in text  # pragma: no cover


class SQLiteStore:
    """A durable key → text table. Subclasses name the ``table`` and its ``schema`` (the
    ``CREATE TABLE IF NOT EXISTS`` statement, with ``key`` and ``value`` columns) and turn
    values to and from text.

    A write that finds the disk full raises ``DiskFullError`` (see ``diskspace``). A store
    with ``reserve_bytes`` keeps that much space on its disk while it is open (``PATH.reserve``)
    and gives it back at that moment: the write is tried once more in the room it made, so the
    value in hand is kept, and so are the next ones (the answers still in flight).

    A database whose pages are damaged raises ``CacheDamagedError`` (exit 2, saying what to do)
    wherever it is found: when it is opened (a damaged header) or used (a damaged page). It is
    not looked for on open: SQLite's ``quick_check`` reads the whole file (5.3 s for a 209 MB
    cache read cold from disk, 0.15 s from memory); ``instructgen cache check`` runs it."""

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
            if is_damage(exc):
                raise CacheDamagedError(self.what, str(self.path), str(exc)) from None
            if isinstance(exc, sqlite3.Error):
                raise OutputFolderError(f"cannot open the cache {self.path}: {exc}") from None
            raise

    @contextlib.contextmanager
    def _guarded(self) -> Iterator[None]:
        """Turn a full disk into ``DiskFullError``, damaged pages into ``CacheDamagedError``."""
        try:
            yield
        except sqlite3.Error as exc:
            if is_disk_full(exc):
                raise disk_full(self.what, self.path, exc) from None
            if is_damage(exc):
                raise CacheDamagedError(self.what, str(self.path), str(exc)) from None
            raise

    def _read(self, key: str) -> str | None:
        with self._lock, self._guarded():
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
                with self._guarded():
                    self._db.execute(sql, values)
                return
            except DiskFullError as error:
                if self._reserve is None or self._reserve.held:
                    raise  # no room was made (by this write's error, given back now)
                full = error
            with self._guarded():
                try:
                    self._db.execute(sql, values)
                except sqlite3.Error as again:
                    if is_disk_full(again):
                        raise full from None
                    raise

    def __len__(self) -> int:
        with self._lock, self._guarded():
            return int(self._db.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0])

    def __contains__(self, key: object) -> bool:
        with self._lock, self._guarded():
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

"""The per-request response cache: SQLite in WAL mode, one row per (engine, model, request, sample).

A response is committed before the dispatcher hands it to the pipeline, so a process killed at
any instant loses only the requests in flight, and a rerun sends no request whose response is
stored. Keys are hashes of the engine identity (name, model, kind — never credentials), the
canonical request and the sample index.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from instructgen.engines import Completion, Request
from instructgen.errors import OutputFolderError
from instructgen.outdir import lock_database

__all__ = ["Cache", "cache_key"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def cache_key(engine_identity: dict[str, Any], request: Request, sample: int = 0) -> str:
    payload = json.dumps(
        {"engine": engine_identity, "request": request.canonical(), "sample": sample},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    # a file name that is not valid UTF-8 reaches the prompt as lone surrogates: hash those too
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


class Cache:
    """A durable key → ``Completion`` store. Safe to share between threads of one process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._writer = lock_database(self.path)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                str(self.path), check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across kill -9
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            self._writer.release()
            raise OutputFolderError(f"cannot open the cache {self.path}: {exc}") from None

    key = staticmethod(cache_key)

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            return Completion.from_dict(json.loads(row[0]))
        except (ValueError, KeyError, TypeError):
            return None  # an unreadable row is a miss, not a crash

    def put(self, key: str, completion: Completion) -> None:
        value = json.dumps(completion.to_dict(), ensure_ascii=False)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, value, created) VALUES (?, ?, ?)",
                (key, value, time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def __contains__(self, key: object) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone()
        return row is not None

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._writer.release()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Cache({str(self.path)!r})"

"""The per-request response cache: SQLite in WAL mode, one row per (engine, model, request, sample).

A response is committed before the dispatcher hands it to the pipeline, so a process killed at
any instant loses only the requests in flight, and a rerun sends no request whose response is
stored. Keys are hashes of the engine identity (name, model, kind and, for a server other than
the provider's default, its endpoint — never credentials), the canonical request and the sample
index.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from instructgen.diskspace import RESERVE_BYTES
from instructgen.engine_contract import Completion, Request
from instructgen.store import SQLiteStore

__all__ = ["Cache", "cache_key"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created REAL NOT NULL
)
"""

# Batch mode: which batch each submitted request is in, committed before the run waits on the
# batch, so a rerun after a crash polls the same batch instead of submitting it again.
_BATCH_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    engine TEXT NOT NULL,
    requests INTEGER NOT NULL,
    created REAL NOT NULL
)
""",
    """
CREATE TABLE IF NOT EXISTS batch_requests (
    key TEXT PRIMARY KEY,
    batch_id TEXT NOT NULL
)
""",
    "CREATE INDEX IF NOT EXISTS batch_requests_batch ON batch_requests (batch_id)",
)


def cache_key(engine_identity: dict[str, Any], request: Request, sample: int = 0) -> str:
    payload = json.dumps(
        {"engine": engine_identity, "request": request.canonical(), "sample": sample},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    # a file name that is not valid UTF-8 reaches the prompt as lone surrogates: hash those too
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


class Cache(SQLiteStore):
    """A durable key → ``Completion`` store. Safe to share between threads of one process."""

    table = "responses"
    schema = _SCHEMA
    what = "the response cache"
    reserve_bytes = RESERVE_BYTES  # room for the answers in flight when the disk fills up

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        with self._guarded():
            for statement in _BATCH_SCHEMA:
                self._db.execute(statement)

    key = staticmethod(cache_key)

    def get(self, key: str) -> Completion | None:
        value = self._read(key)
        if value is None:
            return None
        try:
            return Completion.from_dict(json.loads(value))
        except (ValueError, KeyError, TypeError):
            return None  # an unreadable row is a miss, not a crash

    def put(self, key: str, completion: Completion) -> None:
        value = json.dumps(completion.to_dict(), ensure_ascii=False)
        self._write(("key", "value", "created"), (key, value, time.time()))

    # -- batches in flight (batch mode) ---------------------------------------------------------

    def batch_add(
        self, batch_id: str, keys: list[str], *, engine: dict[str, Any] | None = None
    ) -> None:
        """Record a submitted batch and the keys of its requests, in one transaction."""
        ident = json.dumps(engine or {}, sort_keys=True)
        with self._lock, self._guarded():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO batches (id, engine, requests, created) "
                    "VALUES (?, ?, ?, ?)",
                    (batch_id, ident, len(keys), time.time()),
                )
                self._db.executemany(
                    "INSERT OR REPLACE INTO batch_requests (key, batch_id) VALUES (?, ?)",
                    [(k, batch_id) for k in keys],
                )
            except BaseException:
                if self._db.in_transaction:  # a full disk may have rolled it back already
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def batch_of(self, key: str) -> str | None:
        """The id of the unfinished batch holding this request, if any."""
        with self._lock, self._guarded():
            row = self._db.execute(
                "SELECT batch_id FROM batch_requests WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else str(row[0])

    def batch_keys(self, batch_id: str) -> list[str]:
        with self._lock, self._guarded():
            rows = self._db.execute(
                "SELECT key FROM batch_requests WHERE batch_id = ?", (batch_id,)
            ).fetchall()
        return [str(r[0]) for r in rows]

    def open_batches(self) -> list[str]:
        """Ids of the batches whose results have not been collected yet."""
        with self._lock, self._guarded():
            rows = self._db.execute("SELECT DISTINCT batch_id FROM batch_requests").fetchall()
        return sorted(str(r[0]) for r in rows)

    def batch_done(self, batch_id: str) -> None:
        """Forget a batch whose results are collected (answers are in ``responses``)."""
        with self._lock, self._guarded():
            self._db.execute("DELETE FROM batch_requests WHERE batch_id = ?", (batch_id,))

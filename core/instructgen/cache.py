"""The per-request response cache: SQLite in WAL mode, one row per (engine, model, request, sample).

A response is committed before the dispatcher hands it to the pipeline, so a process killed at
any instant loses only the requests in flight, and a rerun sends no request whose response is
stored. Keys are hashes of the engine identity (name, model, kind — never credentials), the
canonical request and the sample index.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

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

"""Checking a cache database (the response cache, the extraction cache) and salvaging the
readable entries of a damaged one: what ``instructgen cache check`` and ``cache repair`` do.

A damaged file is never deleted: the repair writes the entries it can read into a new file
beside it, then renames the damaged one ``NAME.damaged-TIME`` (with its ``-wal``) and puts the
new one in its place. Entries are read row by row through the table's row ids, so damaged pages
cost only the rows stored in them; rows whose ``value`` is not JSON are left out (a cache only
stores JSON).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.request import pathname2url

from instructgen.errors import CacheDamagedError, ConfigError
from instructgen.outdir import lock_database

__all__ = ["CacheCheck", "Salvage", "check_cache", "find_caches", "repair_cache"]

CACHE_NAMES = ("cache.sqlite3", "extract-cache.sqlite3")
_BATCH = 512  # rows read at once while the pages are sound


@dataclass
class CacheCheck:
    """``ok``: SQLite's ``quick_check`` found nothing wrong; ``problems``: what it found (its
    first lines, or the error that stopped it)."""

    path: Path
    ok: bool
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"path": str(self.path), "ok": self.ok, "problems": self.problems}


@dataclass
class Salvage:
    """What ``repair_cache`` did: ``kept`` rows per table in the new file, ``unreadable``
    reads that failed on damaged pages (about the rows lost), and the name the damaged file
    was given (``None``: it was not damaged, nothing was changed)."""

    path: Path
    kept: dict[str, int] = field(default_factory=dict)
    unreadable: int = 0
    damaged_copy: Path | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "repaired": self.damaged_copy is not None,
            "kept": self.kept,
            "unreadable": self.unreadable,
            "damaged_copy": None if self.damaged_copy is None else str(self.damaged_copy),
        }


def find_caches(path: str | Path) -> list[Path]:
    """The cache databases ``path`` names: the file itself, or those in an output folder.
    ``ConfigError`` (exit 2) when there is none."""
    p = Path(path)
    if p.is_dir():
        found = [p / name for name in CACHE_NAMES if (p / name).is_file()]
        if not found:
            raise ConfigError(f"{p} holds no cache ({' or '.join(CACHE_NAMES)})")
        return found
    if not p.is_file():
        raise ConfigError(f"{p}: no such cache file")
    return [p]


def _open_read_only(path: Path) -> sqlite3.Connection:
    # read-only, and reading the write-ahead log (the last answers may be there only)
    return sqlite3.connect(f"file:{pathname2url(str(path.resolve()))}?mode=ro", uri=True)


def check_cache(path: str | Path) -> CacheCheck:
    """Run SQLite's ``quick_check`` (it reads the whole file) on the cache ``path``."""
    p = Path(path)
    try:
        with contextlib.closing(_open_read_only(p)) as db:
            lines = [str(r[0]) for r in db.execute("PRAGMA quick_check(20)").fetchall()]
    except sqlite3.DatabaseError as exc:
        return CacheCheck(p, False, [str(exc)])
    return CacheCheck(p, lines == ["ok"], [] if lines == ["ok"] else lines)


def _rows(
    db: sqlite3.Connection, table: str, columns: list[str], salvage: Salvage
) -> Iterator[tuple[object, ...]]:
    """The rows of ``table`` that can be read, by row id; ``salvage.unreadable`` counts the
    row ids whose pages failed."""
    cols = ", ".join(f'"{c}"' for c in columns)
    try:
        top = db.execute(f'SELECT max(rowid) FROM "{table}"').fetchone()[0]
    except sqlite3.DatabaseError:
        top = None
    if top is None:  # the right edge is damaged too: probe as far as the file could hold
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        top = int(pages) * 64
    last = 0
    while last < top:
        try:
            batch = db.execute(
                f'SELECT rowid, {cols} FROM "{table}" WHERE rowid > ? ORDER BY rowid LIMIT ?',
                (last, _BATCH),
            ).fetchall()
        except sqlite3.DatabaseError:
            batch = None
        if batch is not None:
            if not batch:
                return
            for row in batch:
                yield tuple(row[1:])
            last = int(batch[-1][0])
            continue
        # a damaged page among the next rows: read them one at a time
        for rowid in range(last + 1, min(top, last + _BATCH) + 1):
            try:
                row = db.execute(
                    f'SELECT {cols} FROM "{table}" WHERE rowid = ?', (rowid,)
                ).fetchone()
            except sqlite3.DatabaseError:
                salvage.unreadable += 1
                continue
            if row is not None:
                yield tuple(row)
        last = min(top, last + _BATCH)


def _is_json(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def repair_cache(path: str | Path, *, now: float | None = None) -> Salvage:
    """Salvage the readable entries of the damaged cache ``path`` into a new file in its
    place; the damaged file is renamed ``NAME.damaged-YYYYMMDD-HHMMSS``. A cache that
    ``check_cache`` finds sound is left as it is. ``FolderInUseError`` while a run uses it;
    ``CacheDamagedError`` when not even its list of tables can be read (nothing to salvage)."""
    p = Path(path)
    salvage = Salvage(p)
    lock = lock_database(p)
    try:
        if check_cache(p).ok:
            return salvage
        tmp = p.with_name(f".{p.name}.repair-{os.getpid()}")
        tmp.unlink(missing_ok=True)
        with contextlib.closing(_open_read_only(p)) as src:
            try:
                schema = src.execute(
                    "SELECT type, name, sql FROM sqlite_master "
                    "WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY type DESC"
                ).fetchall()
            except sqlite3.DatabaseError as exc:
                raise CacheDamagedError(
                    "the cache", str(p), f"{exc}; nothing can be read"
                ) from None
            try:
                with contextlib.closing(sqlite3.connect(str(tmp), isolation_level=None)) as dst:
                    dst.execute("BEGIN")
                    for _kind, _name, sql in schema:  # tables first, then their indexes
                        dst.execute(sql)
                    for kind, name, _sql in schema:
                        if kind != "table":
                            continue
                        columns = [r[1] for r in src.execute(f'PRAGMA table_info("{name}")')]
                        marks = ", ".join("?" for _ in columns)
                        insert = f'INSERT OR REPLACE INTO "{name}" VALUES ({marks})'
                        kept = 0
                        json_at = columns.index("value") if "value" in columns else None
                        for row in _rows(src, name, columns, salvage):
                            if json_at is not None and not _is_json(row[json_at]):
                                salvage.unreadable += 1
                                continue
                            dst.execute(insert, row)
                            kept += 1
                        salvage.kept[name] = kept
                    dst.execute("COMMIT")
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
        damaged = p.with_name(f"{p.name}.damaged-{stamp}")
        os.replace(p, damaged)  # kept, never deleted
        for suffix in ("-wal", "-shm"):
            part = p.with_name(p.name + suffix)
            if part.exists():
                os.replace(part, damaged.with_name(damaged.name + suffix))
        os.replace(tmp, p)
        salvage.damaged_copy = damaged
        return salvage
    finally:
        if lock is not None:
            lock.release()

"""A cache damaged in the middle (64 KiB of garbage over its pages): the run stops with one line
(exit 2) saying what to do, sends nothing more, and keeps what it was paid for; `instructgen
cache check` finds the damage (exit 1), `cache repair` salvages the readable answers into a new
file and keeps the damaged one; the rerun then pays only for the answers that were lost and
makes the dataset an undamaged run makes."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SHARED, TEST_KEY
from selfinstruct_responder import respond
from wire_server import WireServer

from instructgen import InstructionDataset
from instructgen.cache import Cache
from instructgen.cache_repair import check_cache, repair_cache
from instructgen.documents.extract_cache import ExtractCache

MAIN = "import sys\nfrom instructgen.cli import main\nmain(sys.argv[1:])\n"


def instructgen(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_API_KEY": TEST_KEY}
    return subprocess.run(
        [sys.executable, "-c", MAIN, *args], env=env, capture_output=True, text=True, timeout=600
    )


def damage(db: Path, seed: int = 7) -> None:
    """64 KiB of garbage over the middle of ``db`` (page-aligned, as a bad sector would)."""
    size = db.stat().st_size
    at = (size // 2) // 4096 * 4096
    with db.open("r+b") as fh:
        fh.seek(at)
        fh.write(random.Random(seed).randbytes(65536))


def forget_some(db: Path, every: int) -> None:
    """Delete every ``every``-th answer stored: the cache of a run that stopped before
    answering them, with the rest to send scattered through the run."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("DELETE FROM responses WHERE rowid % ? = 0", (every,))
        conn.commit()
        conn.execute("VACUUM")


def rows_in(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])


def paid(server: WireServer) -> int:
    return sum(server.successes.values())


def test_a_damaged_cache_stops_the_run_and_repair_salvages_it(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    size = ("-n", "400", "--num-instructions", "400", "--concurrency", "16")

    def generate(server: WireServer, out: Path, *more: str) -> subprocess.CompletedProcess[str]:
        return instructgen(
            *("generate", str(tasks), "--engine", "openai", *size),
            *("--base-url", server.openai_base_url, "--out", str(out), *more),
        )

    with WireServer() as clean_server:
        clean_server.responder = respond
        done = generate(clean_server, tmp_path / "clean")
        assert done.returncode == 0, done.stderr
        clean = paid(clean_server)

    out = tmp_path / "out"
    db = out / "cache.sqlite3"
    with WireServer() as server:
        server.responder = respond
        # a first run, then a third of its answers forgotten: a run that stopped half way
        first = generate(server, out)
        assert first.returncode == 0, first.stderr
        forget_some(db, every=3)
        server.reset_counts()
        before = rows_in(db)
        damage(db)

        second = generate(server, out)
        assert second.returncode == 2
        assert "Traceback" not in second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert lines[0].startswith(f"error: the response cache {db} is damaged (")
        assert f"instructgen cache repair {db}" in lines[0] and "--no-cache" in lines[0]
        assert "then resume with: instructgen generate " in lines[0]
        paid_in_second = paid(server)
        assert server.paid_twice() == []
        unsaved = re.search(r"(\d+) answers received could not be stored", lines[0])

        assert paid_in_second > 0  # the damage was found after answers were paid for

        # the same on a retry (which may send the requests it meets before the damaged page;
        # their answers are stored like the others)
        assert generate(server, out).returncode == 2
        assert server.paid_twice() == []
        paid_in_second = paid(server)
        paid_before_repair = before + paid_in_second

        checked = instructgen("cache", "check", str(out))
        assert checked.returncode == 1
        assert "damaged" in checked.stderr and "Traceback" not in checked.stderr
        as_damaged = db.read_bytes()

        repaired = instructgen("cache", "repair", str(out))
        assert repaired.returncode == 0, repaired.stderr
        copies = list(out.glob("cache.sqlite3.damaged-*[0-9]"))
        assert len(copies) == 1 and copies[0].read_bytes() == as_damaged  # kept, untouched
        assert instructgen("cache", "check", str(db)).returncode == 0
        kept = rows_in(db)
        assert paid_before_repair * 0.5 < kept < paid_before_repair

        third = generate(server, out)
        assert third.returncode == 0, third.stderr
        # the rerun paid for exactly what the repaired cache lacks ...
        assert paid(server) - paid_in_second == clean - kept
        # ... and the answers paid for before the damage was found are not among it, unless
        # the run said they could not be stored
        repaid = len(server.paid_twice())
        assert repaid <= (int(unsaved.group(1)) if unsaved else 0)
    ds = InstructionDataset.load(out)
    expected = InstructionDataset.load(tmp_path / "clean")
    assert [r["instruction"] for r in ds] == [r["instruction"] for r in expected]
    assert [r["target"] for r in ds] == [r["target"] for r in expected]


def test_repair_keeps_every_readable_entry_and_a_sound_cache_is_left_alone(
    tmp_path: Path,
) -> None:
    from instructgen.engine_contract import Completion

    db = tmp_path / "cache.sqlite3"
    with Cache(db) as cache:
        for i in range(3000):
            cache.put(f"key{i:05d}", Completion(texts=[f"answer {i} " + "word " * 150]))
    assert check_cache(db).ok
    assert repair_cache(db).damaged_copy is None  # sound: nothing changed
    assert not list(tmp_path.glob("*.damaged-*"))

    damage(db)
    found = check_cache(db)
    assert not found.ok and found.problems
    as_damaged = db.read_bytes()
    salvage = repair_cache(db, now=0)
    assert salvage.damaged_copy is not None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(0))
    assert salvage.damaged_copy.name == f"cache.sqlite3.damaged-{stamp}"
    assert salvage.damaged_copy.read_bytes() == as_damaged
    assert check_cache(db).ok
    kept = salvage.kept["responses"]
    # 16 damaged pages of 4 KiB, one answer of ~800 bytes per ~5 per page: at most ~100 lost
    assert 3000 - 120 <= kept < 3000
    with Cache(db) as cache:
        assert len(cache) == kept
        answers = [cache.get(f"key{i:05d}") for i in range(3000)]
    found_ok = [a for a in answers if a is not None]
    assert len(found_ok) == kept
    assert all(a.texts[0].startswith("answer ") for a in found_ok)


def test_a_damaged_extraction_cache_is_a_warning_and_files_are_read_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "extract-cache.sqlite3"
    with ExtractCache(db) as cache:
        for i in range(2000):
            cache.put(f"k{i}", {"text": "some extracted text " * 40})
    damage(db)
    with ExtractCache(db) as cache:
        got = [cache.get(f"k{i}") for i in range(2000)]
        cache.put("new", {"text": "x"})
    assert cache.damaged is not None  # given up at the first damaged page, never raised
    assert any(g is None for g in got)
    warned = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
    assert len(warned) == 1 and "files are read again without it" in warned[0]


def test_cache_check_and_repair_cli_on_bad_paths(tmp_path: Path) -> None:
    r = instructgen("cache", "check", str(tmp_path / "nope.sqlite3"))
    assert r.returncode == 2 and "no such cache file" in r.stderr
    r = instructgen("cache", "repair", str(tmp_path))
    assert r.returncode == 2 and "holds no cache" in r.stderr
    zeroed = tmp_path / "cache.sqlite3"
    zeroed.write_bytes(b"\0" * 8192)
    r = instructgen("cache", "check", str(zeroed), "--json")
    assert r.returncode == 1
    assert json.loads(r.stdout)["ok"] is False

"""Per-file limits of extraction workers: memory (the worker and the programs it starts), the
timeout ending those programs too, the size limit from the command line, and the order in
which files start (slow extractors first)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SHARED
from folder_reading import read_found

import instructgen
from instructgen import Extracted, Extractor, hookimpl, report_progress
from instructgen.cli import cli
from instructgen.documents import discover
from instructgen.documents.discovery import Found
from instructgen.documents.extract_cache import ExtractionRun
from instructgen.documents.types import ExtractOptions
from instructgen.documents.workers import group_memory

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="memory is measured through /proc"
)

HOG = "chunks = []\nwhile len(chunks) < 48:\n    chunks.append(b'x' * (64 << 20))\n"


class Hog(Extractor):
    """Grows by 64 MB every 50 ms up to 3 GB, then hangs."""

    name = "test-hog"
    extensions = ("hog",)

    def extract(self, path: Path) -> Extracted:
        chunks = []
        while len(chunks) < 48:
            chunks.append(b"x" * (64 << 20))  # written, so really resident
            time.sleep(0.05)
        time.sleep(60)
        return Extracted("never")


class ChildHog(Extractor):
    """Starts a program that takes 1 GB; writes its pid next to the file."""

    name = "test-child-hog"
    extensions = ("childhog",)

    def extract(self, path: Path) -> Extracted:
        code = "x = b'x' * (1 << 30)\nimport time\ntime.sleep(60)\n"
        child = subprocess.Popen([sys.executable, "-c", code])
        path.with_suffix(".pid").write_text(str(child.pid))
        child.wait()
        return Extracted("never")


class ChildSleeper(Extractor):
    """Starts a program that never ends; writes its pid next to the file."""

    name = "test-child-sleeper"
    extensions = ("sleeper",)

    def extract(self, path: Path) -> Extracted:
        child = subprocess.Popen(["sleep", "120"])
        path.with_suffix(".pid").write_text(str(child.pid))
        child.wait()
        return Extracted("never")


class Mover(Extractor):
    """Works for 3 s, reporting progress every 0.2 s (pages of a long scan)."""

    name = "test-mover"
    extensions = ("mover",)

    def extract(self, path: Path) -> Extracted:
        for _ in range(15):
            time.sleep(0.2)
            report_progress()
        return Extracted("fifteen pages read")


class Stopper(Extractor):
    """Reports progress for 1 s, then hangs."""

    name = "test-stopper"
    extensions = ("stopper",)

    def extract(self, path: Path) -> Extracted:
        for _ in range(5):
            time.sleep(0.2)
            report_progress()
        time.sleep(60)
        return Extracted("never")


class Collector(Extractor):
    """Runs a full garbage collection, then stays a second (so that memory is looked at)."""

    name = "test-collector"
    extensions = ("collect",)

    def extract(self, path: Path) -> Extracted:
        import gc

        gc.collect()
        time.sleep(1.2)
        return Extracted("collected and read")


class Crasher(Extractor):
    """Ends its process the hard way, as a crash in a native library would."""

    name = "test-crasher"
    extensions = ("crash",)

    def extract(self, path: Path) -> Extracted:
        import os

        os._exit(3)


class LimitPlugin:
    @hookimpl
    def register_extractors(self, registry: object) -> None:
        for cls in (Hog, ChildHog, ChildSleeper, Mover, Stopper, Collector, Crasher):
            registry.add(cls)  # type: ignore[attr-defined]


@pytest.fixture
def limit_plugin() -> Iterator[None]:
    name = instructgen.register_plugin(LimitPlugin(), name="limit-test")
    try:
        yield
    finally:
        instructgen.unregister_plugin(name)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"  # a zombie has ended


def wait_gone(pid: int, seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_a_file_over_the_memory_limit_is_skipped_and_the_run_goes_on(
    tmp_path: Path, limit_plugin: None
) -> None:
    (tmp_path / "a.hog").write_text("x")
    (tmp_path / "b.txt").write_text("Ships and lighthouses and harbours.")
    (tmp_path / "c.txt").write_text("Harbours, lighthouses and ships.")
    start = time.monotonic()
    res = read_found(discover(tmp_path), ExtractOptions(workers=1, timeout=60, max_memory_mb=300))
    took = time.monotonic() - start
    by = {r.rel: r for r in res}
    assert by["a.hog"].skip == "over the memory limit (300 MB)"
    # the hog reaches 300 MB in about 0.25 s; the limit is looked at every 0.5 s
    assert took < 15, took
    # the one worker was replaced: the files after it were read
    assert by["b.txt"].text and by["c.txt"].text


def test_a_decompression_bomb_docx_stops_at_the_memory_limit(tmp_path: Path) -> None:
    """A real extractor on a hostile file: about 1 MB of docx that unzips to 300 MB of XML."""
    import zipfile

    para = "<w:p><w:r><w:t>" + "lighthouse " * 90 + "</w:t></w:r></w:p>"
    with (
        zipfile.ZipFile(SHARED / "corpus" / "simple.docx") as src,
        zipfile.ZipFile(tmp_path / "bomb.docx", "w", zipfile.ZIP_DEFLATED) as out,
    ):
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "word/document.xml":
                data = data.replace(b"<w:body>", b"<w:body>" + para.encode() * 300_000, 1)
            out.writestr(item, data)
    assert (tmp_path / "bomb.docx").stat().st_size < 2_000_000
    shutil.copy(SHARED / "corpus" / "simple.docx", tmp_path / "simple.docx")
    start = time.monotonic()
    res = read_found(discover(tmp_path), ExtractOptions(workers=1, timeout=120, max_memory_mb=300))
    by = {r.rel: r for r in res}
    assert by["bomb.docx"].skip == "over the memory limit (300 MB)"
    assert by["simple.docx"].extractor == "office" and by["simple.docx"].text
    assert time.monotonic() - start < 30


def test_memory_of_the_programs_an_extractor_starts_counts(
    tmp_path: Path, limit_plugin: None
) -> None:
    (tmp_path / "a.childhog").write_text("x")
    (tmp_path / "b.txt").write_text("Ships and lighthouses and harbours.")
    res = read_found(discover(tmp_path), ExtractOptions(workers=2, timeout=60, max_memory_mb=400))
    by = {r.rel: r for r in res}
    assert by["a.childhog"].skip == "over the memory limit (400 MB)"
    assert by["b.txt"].text
    assert wait_gone(int((tmp_path / "a.pid").read_text())), "the program outlived its worker"


def test_a_timeout_also_ends_the_programs_the_extractor_started(
    tmp_path: Path, limit_plugin: None
) -> None:
    (tmp_path / "a.sleeper").write_text("x")
    res = read_found(discover(tmp_path), ExtractOptions(workers=1, timeout=1.5))
    assert res[0].skip == "timed out after 1.5 s (--file-timeout allows more)"
    assert wait_gone(int((tmp_path / "a.pid").read_text())), "the program outlived its worker"


def test_a_file_that_keeps_reporting_progress_may_run_past_the_time_limit(
    tmp_path: Path, limit_plugin: None
) -> None:
    (tmp_path / "long.mover").write_text("x")
    (tmp_path / "stuck.stopper").write_text("x")
    start = time.monotonic()
    res = read_found(discover(tmp_path), ExtractOptions(workers=2, timeout=1.5))
    by = {r.rel: r for r in res}
    # 3 s of work against a 1.5 s limit: every report gave it 1.5 s more
    assert by["long.mover"].text == "fifteen pages read"
    # moved for 1 s, then nothing: stopped 1.5 s after its last report
    assert by["stuck.stopper"].skip is not None
    assert by["stuck.stopper"].skip.startswith("timed out: no progress for 1.5 s (after ")
    assert time.monotonic() - start < 15


def test_report_progress_outside_a_worker_does_nothing() -> None:
    report_progress()  # in the calling process: no counter, no error


def test_a_caller_with_a_big_heap_does_not_push_workers_over_the_limit(
    tmp_path: Path, limit_plugin: None
) -> None:
    # 3 million small lists in the calling process (about 500 MB of garbage-collected
    # objects): a forked worker that collects garbage must not copy them.
    heap = [[i, [i]] for i in range(3_000_000)]
    (tmp_path / "a.collect").write_text("x")
    try:
        res = read_found(
            discover(tmp_path), ExtractOptions(workers=1, timeout=60, max_memory_mb=200)
        )
    finally:
        del heap
    assert res[0].text == "collected and read", res[0].skip


def test_a_file_that_crashes_its_worker_is_skipped_and_the_run_goes_on(
    tmp_path: Path, limit_plugin: None
) -> None:
    for name in ("a.crash", "b.crash"):
        (tmp_path / name).write_text("x")
    (tmp_path / "c.txt").write_text("Ships and lighthouses and harbours.")
    res = read_found(discover(tmp_path), ExtractOptions(workers=1, timeout=30))
    by = {r.rel: r for r in res}
    assert by["a.crash"].skip == by["b.crash"].skip == "extraction crashed the worker"
    assert by["c.txt"].text  # read by the worker that replaced the crashed ones


def test_a_worker_killed_while_idle_is_replaced(tmp_path: Path) -> None:
    import multiprocessing

    for name in ("a.txt", "b.txt", "c.txt"):
        (tmp_path / name).write_text(f"Lighthouse notes in {name}.")
    killed = []

    def kill_the_workers(res: object) -> None:  # as the OOM killer would, between two files
        if not killed:
            for child in multiprocessing.active_children():
                child.kill()
                child.join(5)
                killed.append(child.pid)

    res = read_found(discover(tmp_path), ExtractOptions(workers=1), on_result=kill_the_workers)
    assert killed and [r.text for r in res] == [f"Lighthouse notes in {n}.txt." for n in "abc"]


def test_group_memory_counts_private_memory(tmp_path: Path) -> None:
    code = f"import os, time\nos.setpgid(0, 0)\n{HOG}print('ready', flush=True)\ntime.sleep(30)\n"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        used = group_memory(proc.pid)
        assert used is not None and 3.0e9 < used < 3.6e9, used  # 48 x 64 MB = 3.2 GB
    finally:
        proc.kill()
        proc.wait()
    assert group_memory(proc.pid) is None  # no such group any more


def test_slow_extractors_start_first_then_larger_files(tmp_path: Path) -> None:
    sizes = {"small.txt": 10, "big.txt": 5000, "scan.png": 100, "talk.wav": 50, "mid.md": 800}
    found = [Found(tmp_path / n, n, s) for n, s in sorted(sizes.items())]
    run = ExtractionRun(found)
    assert list(run.known()) == []  # nothing skipped, no cache
    order = [job.rel for job in run.jobs()]
    assert order == ["scan.png", "talk.wav", "big.txt", "mid.md", "small.txt"]


def test_limits_from_the_command_line(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "big.txt").write_text("word " * 600)  # 3,000 bytes
    (d / "small.txt").write_text("A few words here.")
    r = CliRunner().invoke(cli, ["extract", str(d), "--json", "--max-file-size", "0.002"])
    assert r.exit_code == 0, r.output
    by = {f["rel"]: f for f in json.loads(r.stdout)["files"]}
    assert by["big.txt"]["skip"] == "over the size limit (3,000 > 2,097 bytes)"
    assert by["small.txt"]["chars"] > 0
    r = CliRunner().invoke(cli, ["extract", str(d), "--max-memory", "-1"])
    assert r.exit_code == 2 and "--max-memory" in r.output
    help_text = CliRunner().invoke(cli, ["from-dir", "--help"]).output
    for flag in ("--file-timeout", "--max-file-size", "--max-memory"):
        assert flag in help_text


def test_the_defaults_are_one_set() -> None:
    """The command line and ExtractOptions share the limits module's defaults."""
    from instructgen import limits

    assert ExtractOptions().timeout == limits.DEFAULT_FILE_TIMEOUT
    assert ExtractOptions().max_bytes == limits.DEFAULT_MAX_BYTES
    assert ExtractOptions().max_memory_mb == limits.DEFAULT_MAX_MEMORY_MB
    help_text = CliRunner().invoke(cli, ["extract", "--help"]).output
    assert f"default: {limits.DEFAULT_MAX_MEMORY_MB}" in help_text

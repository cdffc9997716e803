"""A directory run reads only the folder it is given, survives any file name, any depth of
folders, long lines and sparse or binary files, and never reads its own output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TEST_KEY
from folder_reading import read_folder
from selfinstruct_responder import respond
from wire_server import WireServer

from instructgen.cli import cli
from instructgen.documents import discover
from instructgen.documents.chunking import chunk_text

MAIN = "import sys\nfrom instructgen.cli import main\nmain(sys.argv[1:])\n"
SECRET = "root:$6$saltsalt$PASSWORDHASH:19000:0:99999:7:::"


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", MAIN, *args],
        env={**os.environ, "OPENAI_API_KEY": TEST_KEY},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def from_dir(server: WireServer, folder: Path, out: Path, *more: str) -> list[str]:
    return [
        *("from-dir", str(folder), "--engine", "openai"),
        *("--base-url", server.openai_base_url, "--out", str(out), "--samples-per-chunk", "2"),
        *more,
    ]


@pytest.fixture
def folder_with_links(tmp_path: Path) -> Path:
    """docs/ with a note, links to a file and a folder outside it, and links that stay inside."""
    outside = tmp_path / "etc"
    outside.mkdir()
    (outside / "shadow").write_text(SECRET + "\n")
    docs = tmp_path / "docs"
    (docs / "inner").mkdir(parents=True)
    (docs / "note.txt").write_text("Lighthouses guide ships along the coast at night.\n")
    (docs / "inner" / "keeper.txt").write_text("The keeper trims the lamp every evening.\n")
    (docs / "etcdir").symlink_to(outside, target_is_directory=True)
    (docs / "shadow.txt").symlink_to(outside / "shadow")
    (docs / "same-note.txt").symlink_to(docs / "note.txt")
    (docs / "inner-again").symlink_to(docs / "inner", target_is_directory=True)
    return docs


# -- symbolic links ---------------------------------------------------------------------------


def test_symlinks_out_of_the_folder_are_skipped_and_never_reach_a_prompt(
    folder_with_links: Path, tmp_path: Path
) -> None:
    docs = folder_with_links
    r = CliRunner().invoke(cli, ["extract", str(docs), "--json", "--workers", "0"])
    assert r.exit_code == 0, r.output
    files = {f["rel"]: f for f in json.loads(r.output)["files"]}
    assert files["etcdir"]["skip"] == "symlink leaves the folder"
    assert files["shadow.txt"]["skip"] == "symlink leaves the folder"
    assert files["same-note.txt"]["skip"] is None  # a link inside the folder is read
    assert files["same-note.txt"]["resolved"] == str((docs / "note.txt").resolve())
    assert files["inner-again"]["skip"] == "symlink loop (folder already read)"
    assert not any("shadow" in rel and f["skip"] is None for rel, f in files.items())

    with WireServer() as server:
        server.responder = respond
        out = tmp_path / "out"
        r = run_cli(*from_dir(server, docs, out, "--include", "etcdir/shadow", "--include", "*"))
        assert r.returncode == 0, r.stderr
        assert server.calls and not any("PASSWORDHASH" in c.prompt for c in server.calls)
        report = json.loads((out / "run.json").read_text())
        read = [f for f in report["files"] if f["skip"] is None]
        assert all(f["resolved"].startswith(str(docs.resolve())) for f in read)
        assert {"file": "shadow.txt", "reason": "symlink leaves the folder"} in report[
            "skipped_files"
        ]

        # --follow-symlinks lets them in, and run.json says where they led
        out2 = tmp_path / "out2"
        r = run_cli(*from_dir(server, docs, out2, "--follow-symlinks"))
        assert r.returncode == 0, r.stderr
        files = {f["rel"]: f for f in json.loads((out2 / "run.json").read_text())["files"]}
        assert files["shadow.txt"]["skip"] is None
        assert files["shadow.txt"]["resolved"] == str((tmp_path / "etc" / "shadow").resolve())
        assert files["etcdir/shadow"]["resolved"] == str((tmp_path / "etc" / "shadow").resolve())


def test_the_python_api_follows_symlinks_only_when_asked(folder_with_links: Path) -> None:
    kept = {f.rel: f.skip for f in discover(folder_with_links)}
    assert kept["shadow.txt"] == kept["etcdir"] == "symlink leaves the folder"
    followed = {f.rel: f.skip for f in discover(folder_with_links, follow_symlinks=True)}
    assert followed["shadow.txt"] is None and followed["etcdir/shadow"] is None
    result = read_folder(folder_with_links, workers=0)
    assert not any("PASSWORDHASH" in c.text for c in result.chunks)


# -- file names ---------------------------------------------------------------------------------


def test_names_that_are_not_utf8_or_hold_control_characters_do_not_stop_a_run(
    tmp_path: Path,
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "plain.txt").write_text("A plain note about tides and harbours.\n")
    raw = os.fsencode(docs) + b"/caf\xe9-\xff.txt"  # Latin-1 bytes: not UTF-8
    with open(raw, "wb") as fh:
        fh.write(b"A note whose name is not UTF-8. It talks about ferries.\n")
    (docs / "bell\x07\x1b[31mred\nline.txt").write_text("A name with control characters.\n")
    with WireServer() as server:
        server.responder = respond
        out = tmp_path / "out"
        r = run_cli(*from_dir(server, docs, out))
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
        report = json.loads((out / "run.json").read_text(encoding="utf-8"))
        rels = sorted(f["rel"] for f in report["files"])
        assert rels == [
            "bell\\u0007\\u001b[31mred\\u000aline.txt",
            "caf\\xe9-\\xff.txt",
            "plain.txt",
        ]
        assert all(f["skip"] is None for f in report["files"])
        assert len(server.calls) == 3
        assert not any("\x1b" in c.prompt for c in server.calls)
        assert any("caf\\xe9-\\xff.txt" in c.prompt for c in server.calls)
    r = run_cli("extract", str(docs))
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "caf\\xe9-\\xff.txt" in r.stdout


# -- depth ----------------------------------------------------------------------------------------


@contextmanager
def nested_folders(base: Path, depth: int) -> Iterator[Path]:
    """``depth`` nested folders ``d/d/...`` with a note three levels down: deeper than any path
    a system call accepts, so made and removed through folder descriptors."""
    top = base / "deep"
    top.mkdir()
    fd = os.open(top, os.O_RDONLY)
    level = 0
    try:
        for level in range(1, depth + 1):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = child
            if level == 3:
                note = os.open("note.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
                os.write(note, b"A note three folders down.\n")
                os.close(note)
        yield top
    finally:
        while level > 0:
            if level == 3:
                os.unlink("note.txt", dir_fd=fd)
            parent = os.open("..", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = parent
            os.rmdir("d", dir_fd=fd)
            level -= 1
        os.close(fd)


def test_ten_thousand_nested_folders_are_walked_without_recursion(tmp_path: Path) -> None:
    with nested_folders(tmp_path, 10_000) as top:
        found = discover(top)
        assert [f.rel for f in found if f.skip is None] == ["d/d/d/note.txt"]
        assert any("unreadable folder" in (f.skip or "") for f in found)  # where paths end
        r = run_cli("extract", str(top), "--workers", "0")
        assert r.returncode == 0, r.stderr
        assert "RecursionError" not in r.stderr and "1 of 2 files read" in r.stdout


# -- long lines, sparse and binary files ---------------------------------------------------------


def test_chunking_time_grows_linearly_with_a_single_line() -> None:
    def seconds(megabytes: int) -> float:
        text = "word " * (megabytes * 1024 * 1024 // 5)
        start = time.perf_counter()
        chunks = chunk_text(text, 8000)
        assert max(len(c) for c in chunks) <= 8000
        return time.perf_counter() - start

    small, large = seconds(2), seconds(16)
    # 8 times the text: linear is about 8 times the time, quadratic 64 times (shared CPUs:
    # generous bounds)
    assert large / max(small, 1e-3) < 24, (small, large)
    assert large < 20


def test_chunking_runs_in_the_worker_under_the_file_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import instructgen.documents.chunking as chunking

    (tmp_path / "a.txt").write_text("Some text about boats and the sea.\n")

    def slow(text: str, chunk_size: int = 8000, overlap: int = 200) -> list[str]:
        time.sleep(30)
        return [text]

    monkeypatch.setenv("INSTRUCTGEN_WORKER_START", "fork")  # a forked worker inherits `slow`
    monkeypatch.setattr(chunking, "chunk_text", slow)
    monkeypatch.setattr("instructgen.documents.routing.chunk_text", slow)
    start = time.monotonic()
    result = read_folder(tmp_path, workers=1, timeout=2)
    assert time.monotonic() - start < 20
    assert result.files[0].skip is not None and result.files[0].skip.startswith("timed out")
    assert result.chunks == []


def test_a_sparse_file_of_nul_bytes_and_a_binary_file_are_skipped_as_not_text(
    tmp_path: Path,
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    with open(docs / "zeros.txt", "wb") as fh:
        fh.truncate(1024**3)  # 1 GB, sparse: no disk used
    (docs / "noise.txt").write_bytes(bytes(range(32)) * 2000)  # control bytes, a few NULs
    (docs / "good.txt").write_text("Ships need harbours in storms.\n")
    r = run_cli(
        "extract",
        str(docs),
        "--json",
        "--max-file-size",
        "2000",
        "--file-timeout",
        "30",
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    files = {f["rel"]: f for f in json.loads(r.stdout)["files"]}
    assert files["zeros.txt"]["skip"].startswith("not text")
    assert files["noise.txt"]["skip"].startswith("not text")
    assert files["good.txt"]["skip"] is None


def test_a_non_utf8_name_and_a_40mb_line_in_one_run_finish_within_a_minute(
    tmp_path: Path,
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    with open(os.fsencode(docs) + b"/r\xe9sum\xe9.txt", "wb") as fh:
        fh.write(b"A short note about the harbour master.\n")
    (docs / "long.txt").write_text("word " * (40 * 1024 * 1024 // 5))
    with WireServer() as server:
        server.responder = respond
        start = time.monotonic()
        r = run_cli(*from_dir(server, docs, tmp_path / "out", "--chunk-size", "20000"), timeout=120)
        assert r.returncode == 0, r.stderr
        assert time.monotonic() - start < 60


# -- the output folder inside the input folder ---------------------------------------------------


def test_out_inside_the_input_folder_is_not_read_by_the_next_run(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.txt").write_text("Lighthouses guide ships along the coast at night.\n")
    out = docs / "dataset"
    with WireServer() as server:
        server.responder = respond
        first = run_cli(*from_dir(server, docs, out))
        assert first.returncode == 0, first.stderr
        assert first.stderr.count("leaving out dataset") == 1
        sent = len(server.calls)
        second = run_cli(*from_dir(server, docs, out))
        assert second.returncode == 0, second.stderr
        assert len(server.calls) == sent  # the same files, all answered from the cache
        report = json.loads((out / "run.json").read_text())
        assert [f["rel"] for f in report["files"]] == ["note.txt"]

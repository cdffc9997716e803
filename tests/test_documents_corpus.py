"""Directory runs on the real corpus (all 25 formats, hard cases included), bad files, re-runs,
chunking, Q/A parsing and `from-dir` against the wire server."""

from __future__ import annotations

import json
import os
import shutil
import time
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ENGINES, FORMATS_25, SHARED, engine_env
from folder_reading import read_folder, read_found
from selfinstruct_responder import respond
from wire_server import WireServer

import instructgen
from instructgen import Extracted, Extractor, InstructionDataset, hookimpl
from instructgen.cli import cli
from instructgen.documents import chunk_text, discover, parse_qa
from instructgen.documents.types import ExtractOptions

CORPUS = SHARED / "corpus"

# Files that cannot give text, and the reason a user reads for each.
EXPECTED_SKIPS = {
    "audio/CantinaBand3.wav": "no speech found",
    "empty.xlsx": "no text found in the xlsx file",
    "eml/fake-encrypted.eml": "encrypted e-mail",
    "eml/mime-no-body.eml": "no text found in the eml file",
    "fake-encrypted.msg": "encrypted e-mail",
    "fake-text-all-whitespace.txt": "no text (only whitespace)",
    "img/example-converted.gif": "no text found in the image",
    "img/example.jpg": "no text found in the image",
    "pdf/password.pdf": "encrypted PDF (password required)",
}

EXPECTED_WORDS = {
    "audio/self-instruct-summary.wav": "language model",
    "audio/self-instruct-summary.mp3": "language model",
    "audio/self-instruct-summary.ogg": "language model",
    "img/layout-parser-paper-fast.tiff": "LayoutParser",
    "img/DA-1p.jpg": "CREATURES",
    "img/english-and-korean.png": "RULES AND INSTRUCTIONS",
    "img/chi_sim_image.jpeg": "肌肤",
    "img/table-multi-row-column-cells.tif": "Results",
    "pdf/layout-parser-paper-with-empty-pages.pdf": "LayoutParser",
    "pdf/copy-protected.pdf": "LayoutParser",
    "language-docs/eng_spa_mult.doc": "All human beings are born free",  # a docx named .doc
    "duplicate-paragraphs.doc": "This document contains duplicates",
    "fake-text-utf-16-be.txt": "This is a test document",
    "fake-text-utf-32.txt": "This is a test document",
    "umlauts-non-utf8.md": "können",
    "example-steelJIS-datasheet-utf-16.html": "SteelJIS",
    "fake-doc.rtf": "My First Heading",
    "simple.odt": "favorite things",
    "language-docs/eng_spa_mult.epub": "dignity",
    "fake-email-attachment.msg": "Here's the attachments",
    "eml/email-no-utf8-2008-07-16.062410.eml": "סלבה",
    "tests-example.xls": "What is 2+2",
    "vodafone.xlsx": "Financial performance",
    "sample-presentation.pptx": "Title Slide",
    "fake-html-pre.htm": "107th Congress",
    "stanley-cups-with-emoji.csv": "Stanley Cups",
    "single-line-object.json": "Garden Trowel",
    "rotated-page-90.pdf": "Rotated page fixture",
}


@pytest.fixture(scope="session")
def corpus_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("corpus") / "corpus"
    shutil.copytree(CORPUS, dst, ignore=shutil.ignore_patterns("NOTICE.md"))
    return dst


@pytest.fixture(scope="session")
def corpus_scan(corpus_copy: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    cache = tmp_path_factory.mktemp("xcache") / "extract.sqlite3"
    start = time.monotonic()
    result = read_folder(corpus_copy, workers=2, cache_path=cache)
    return {"result": result, "cache": cache, "seconds": time.monotonic() - start}


def test_every_corpus_file_gives_text_or_a_documented_reason(corpus_scan: dict) -> None:
    files = {f.rel: f for f in corpus_scan["result"].files}
    assert len(files) == 108
    exts = {Path(r).suffix.lower() for r in files}
    assert exts >= FORMATS_25
    skipped = {rel: f.skip for rel, f in files.items() if f.skip}
    assert set(skipped) == set(EXPECTED_SKIPS), skipped
    for rel, reason in EXPECTED_SKIPS.items():
        assert reason in (skipped[rel] or ""), (rel, skipped[rel])
    for rel, f in files.items():
        if not f.skip:
            assert f.text and f.text.strip() and f.extractor, rel


@pytest.mark.parametrize("rel", sorted(EXPECTED_WORDS))
def test_expected_words(corpus_scan: dict, rel: str) -> None:
    files = {f.rel: f for f in corpus_scan["result"].files}
    assert EXPECTED_WORDS[rel].lower() in (files[rel].text or "").lower(), files[rel].text


def test_rerun_reads_nothing_unchanged_and_rereads_changes(
    corpus_copy: Path, corpus_scan: dict
) -> None:
    again = read_folder(corpus_copy, workers=2, cache_path=corpus_scan["cache"])
    assert again.summary()["from_cache"] == 108 - 0  # every file answered by content hash
    changed = corpus_copy / "fake-text.txt"
    original = changed.read_text()
    try:
        changed.write_text("A completely new text about lighthouses and their keepers.")
        third = read_folder(corpus_copy, workers=0, cache_path=corpus_scan["cache"])
        f = next(x for x in third.files if x.rel == "fake-text.txt")
        assert not f.cached and "lighthouses" in (f.text or "")
        assert third.summary()["from_cache"] == 107
    finally:
        changed.write_text(original)


def test_upgrading_an_extractor_plugin_rereads_its_files(tmp_path: Path) -> None:
    from instructgen import plugins

    (tmp_path / "a.txt").write_text("Lighthouses and their keepers.")
    cache = tmp_path / "cache.sqlite3"
    assert read_folder(tmp_path, workers=0, cache_path=cache).summary()["from_cache"] == 0
    assert read_folder(tmp_path, workers=0, cache_path=cache).summary()["from_cache"] == 1
    info = next(i for i in plugins.plugin_infos() if i.name == "text")
    installed = info.version
    try:
        info.version = f"{installed}.post1"  # what a newer release of the plugin reports
        again = read_folder(tmp_path, workers=0, cache_path=cache)
        assert again.summary()["from_cache"] == 0 and again.files[0].text
    finally:
        info.version = installed
    assert read_folder(tmp_path, workers=0, cache_path=cache).summary()["from_cache"] == 1


def test_bad_files_are_skipped_with_reasons(tmp_path: Path) -> None:
    d = tmp_path / "bad"
    d.mkdir()
    (d / "empty.txt").write_bytes(b"")
    (d / "truncated.docx").write_bytes(b"PK\x03\x04" + b"\x00" * 50)
    (d / "binary.pdf").write_bytes(b"%PDF-1.7\n" + os.urandom(2000))
    (d / "unknown.xyz").write_bytes(b"\x00\x01\x02 binary")
    (d / "big.txt").write_text("x" * 50_000)
    (d / "loop").symlink_to(d / "loop")
    (d / "sub").mkdir()
    (d / "sub" / "up").symlink_to(d, target_is_directory=True)
    (d / "good.txt").write_text("Lighthouses guide ships safely into the harbour at night.")
    real = tmp_path / "real.docx"
    with zipfile.ZipFile(real, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
    (d / "notes.pdf").write_bytes((CORPUS / "fake.docx").read_bytes())  # wrong extension
    result = read_folder(d, workers=2, max_bytes=40_000)
    by = {f.rel: f for f in result.files}
    assert by["empty.txt"].skip == "empty file"
    assert by["truncated.docx"].skip and "docx" in by["truncated.docx"].skip
    assert by["binary.pdf"].skip and "PDF" in by["binary.pdf"].skip
    assert by["unknown.xyz"].skip == "no extractor for '.xyz' files"
    assert by["big.txt"].skip and "over the size limit" in by["big.txt"].skip
    assert by["loop"].skip == "symlink loop"
    assert by["sub/up"].skip and "symlink loop" in by["sub/up"].skip
    assert by["good.txt"].text and "Lighthouses" in by["good.txt"].text
    assert by["notes.pdf"].extractor == "office" and "Lorem ipsum" in by["notes.pdf"].text
    if os.geteuid() != 0:  # root reads anything
        (d / "secret.txt").write_text("hidden")
        (d / "secret.txt").chmod(0)
        assert "permission denied" in (read_folder(d, workers=0).files[-1].skip or "")


class Hang(Extractor):
    name = "test-hang"
    extensions = ("hang",)

    def extract(self, path: Path) -> Extracted:
        time.sleep(60)
        return Extracted("never")


class HangPlugin:
    @hookimpl
    def register_extractors(self, registry: object) -> None:
        registry.add(Hang)  # type: ignore[attr-defined]


def test_a_stuck_file_is_killed_and_the_run_goes_on(tmp_path: Path) -> None:
    name = instructgen.register_plugin(HangPlugin(), name="hang-test")
    try:
        (tmp_path / "a.hang").write_text("x")
        (tmp_path / "b.txt").write_text("Ships and lighthouses and harbours.")
        start = time.monotonic()
        res = read_found(discover(tmp_path), ExtractOptions(workers=2, timeout=1.5))
        assert time.monotonic() - start < 20
        by = {r.rel: r for r in res}
        assert by["a.hang"].skip == "timed out after 1.5 s (--file-timeout allows more)"
        assert by["b.txt"].text
    finally:
        instructgen.unregister_plugin(name)


def test_discovery_is_deterministic_with_globs(tmp_path: Path) -> None:
    for rel in ["b/2.TXT", "a/1.md", "a/.hidden.txt", "c/skip.csv", "z.txt"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("text here")
    assert [f.rel for f in discover(tmp_path)] == ["a/1.md", "b/2.TXT", "c/skip.csv", "z.txt"]
    assert [f.rel for f in discover(tmp_path, include=["*.txt"])] == ["b/2.TXT", "z.txt"] or [
        f.rel for f in discover(tmp_path, include=["*.txt", "*.TXT"])
    ] == ["b/2.TXT", "z.txt"]
    assert [f.rel for f in discover(tmp_path, exclude=["c/*"])] == ["a/1.md", "b/2.TXT", "z.txt"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes: POSIX")
def test_named_pipes_and_sockets_are_skipped_unopened(tmp_path: Path) -> None:
    import socket

    os.mkfifo(tmp_path / "pipe.txt")  # opening it would wait for a writer forever
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "s.sock"))
    (tmp_path / "z.txt").write_text("Lighthouses and harbours.")
    try:
        by = {f.rel: f for f in read_folder(tmp_path, workers=1, timeout=30).files}
    finally:
        sock.close()
    assert by["pipe.txt"].skip == "not a regular file (named pipe)"
    assert by["s.sock"].skip == "not a regular file (socket)"
    assert by["z.txt"].text


def test_double_star_globs_also_match_no_folder(tmp_path: Path) -> None:
    for rel in ["top.txt", "docs/a.md", "docs/deep/b.md", "other/c.md", "docs/d.txt"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("text here")
    rels = lambda **kw: [f.rel for f in discover(tmp_path, **kw)]  # noqa: E731
    assert rels(include=["**/*.txt"]) == ["docs/d.txt", "top.txt"]
    assert rels(include=["docs/**/*.md"]) == ["docs/a.md", "docs/deep/b.md"]
    assert rels(exclude=["docs/**"]) == ["other/c.md", "top.txt"]


def test_chunking_respects_size_and_boundaries() -> None:
    paras = [f"Paragraph {i}. " + "A sentence about ships. " * 20 for i in range(30)]
    text = "\n\n".join(paras)
    chunks = chunk_text(text, chunk_size=1500, overlap=100)
    assert all(len(c) <= 1500 for c in chunks)
    assert len(chunks) > 5
    assert all(p.split(".")[0] in "".join(chunks) for p in paras)
    assert chunk_text("one short text", 8000) == ["one short text"]
    huge = "word " * 5000
    assert all(len(c) <= 1000 for c in chunk_text(huge, 1000))


@pytest.mark.parametrize(
    "reply",
    [
        "Q1: What is X?\nA1: X is y.\nQ2: Who?\nA2: Bob.",
        "Question: What is X?\nAnswer: X is y.\n\nQuestion: Who?\nAnswer: Bob.",
        "1. Q: What is X?\n   A: X is y.\n2. Q: Who?\n   A: Bob.",
        "**Q1:** What is X?\n**A1:** X is y.\n**Q2:** Who?\n**A2:** Bob.",
        "1. What is X?\nAnswer: X is y.\n2. Who?\nAnswer: Bob.",
    ],
)
def test_qa_parser_tolerates_styles(reply: str) -> None:
    assert parse_qa(reply) == [("What is X?", "X is y."), ("Who?", "Bob.")]


@pytest.mark.parametrize("engine", ENGINES)
def test_from_dir_gives_chunks_times_samples(
    wire_server: WireServer, tmp_path: Path, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wire_server.responder = respond
    docs = tmp_path / "docs"
    shutil.copytree(CORPUS / "pdf", docs / "pdf")
    shutil.copytree(CORPUS / "eml", docs / "eml")
    env = engine_env(wire_server, engine)
    monkeypatch.setenv(env["key_var"], env["key"])
    out = tmp_path / "out"
    r = CliRunner().invoke(
        cli,
        [
            "from-dir",
            str(docs),
            "--engine",
            engine,
            "--base-url",
            env["base_url"],
            "--chunk-size",
            "2000",
            "--samples-per-chunk",
            "3",
            "--out",
            str(out),
            "--json",
            "--file-timeout",
            "120",
            "--max-memory",
            "1024",
            "--max-file-size",
            "50",
        ],
    )
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout)
    run = json.loads((out / "run.json").read_text())
    assert run["limits"] == {
        "file_timeout_s": 120,
        "max_file_bytes": 50 * 1024 * 1024,
        "max_memory_mb": 1024,
        "workers": 2,
        "follow_symlinks": False,
    }
    chunks = run["extraction"]["chunks"]
    assert summary["examples"] == chunks * 3 == len(InstructionDataset.load(out))
    assert {s["file"] for s in run["skipped_files"]} == {
        "pdf/password.pdf",
        "eml/fake-encrypted.eml",
        "eml/mime-no-body.eml",
    }
    # every chunk's prompt names its file, not only the first chunk's
    prompts = [c.prompt for c in wire_server.prompt_calls]
    multi = [f for f in run["files"] if f["chars"] > 2000]
    assert multi
    for f in multi:
        name = f["rel"].rsplit("/", 1)[-1]
        assert sum(f"Document: {name}" in p for p in prompts) >= 2
    ds = InstructionDataset.load(out)
    assert all(row["source"].startswith(("pdf/", "eml/")) for row in ds)
    # rerun: nothing sent again, nothing re-read
    sent = len(wire_server.calls)
    r = CliRunner().invoke(
        cli,
        [
            "from-dir",
            str(docs),
            "--engine",
            engine,
            "--base-url",
            env["base_url"],
            "--chunk-size",
            "2000",
            "--samples-per-chunk",
            "3",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert r.exit_code == 0 and len(wire_server.calls) == sent
    assert json.loads(r.stdout)["from_cache"] == summary["files"] - 0


def test_from_dir_with_self_instruct(wire_server: WireServer, tmp_path: Path) -> None:
    wire_server.responder = respond
    docs = tmp_path / "docs"
    shutil.copytree(CORPUS / "eml", docs)
    e = instructgen.engine("openai", api_key="k", base_url=wire_server.openai_base_url)
    ds = InstructionDataset.generate_dataset_from_dir(
        docs,
        e,
        use_self_instruct=True,
        num_samples_per_chunk=2,
        num_instructions=6,
        num_instructions_for_finetuning=7,
        out=tmp_path / "o",
    )
    assert len(ds) == 7
    assert ds.run_report["self_instruct"]["instructions_generated"] == 6
    assert all(r["source"] == "self-instruct:from-dir" for r in ds)


def test_extract_cli_json(tmp_path: Path) -> None:
    shutil.copytree(CORPUS / "language-docs", tmp_path / "d")
    r = CliRunner().invoke(cli, ["extract", str(tmp_path / "d"), "--json"])
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["summary"]["files"] == 10 and out["summary"]["skipped"] == 0
    doc = next(f for f in out["files"] if f["rel"] == "eng_spa_mult.doc")
    assert doc["extractor"] == "office" and doc["chunks"] >= 1
    r = CliRunner().invoke(cli, ["extract", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "no such file or directory" in r.stderr

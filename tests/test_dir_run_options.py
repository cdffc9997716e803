"""A directory run as one value: ``DirRunOptions`` from the CLI and the Python API to the
pipeline; the front doors' signatures built from its fields; one meaning for ``cache``; one
owner for the request timeout; run.json's replies report as a typed value."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import engine_env, make_engine
from wire_server import WireServer, qa_responder

from instructgen import InstructionDataset
from instructgen.cli import cli
from instructgen.dispatch import DispatchConfig, Dispatcher
from instructgen.documents.qa import ChunkPairs, RepliesReport
from instructgen.documents.stream import LIMIT_KEYWORDS, DirRunOptions
from instructgen.documents.types import ExtractOptions
from instructgen.errors import ConfigError
from instructgen.limits import DEFAULT_REQUEST_TIMEOUT
from instructgen.runs import cache_file, cache_folder

WORDS = " ".join(f"word{i}" for i in range(300))


def _docs(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"note-{i}.txt").write_text(f"Note {i}. {WORDS}", encoding="utf-8")
    return docs


# -- the signature, written once ---------------------------------------------------------------


def test_front_doors_show_every_field_of_the_options() -> None:
    fields = [f.name for f in dataclasses.fields(DirRunOptions)]
    for func in (
        InstructionDataset.generate_dataset_from_dir,
        InstructionDataset.agenerate_dataset_from_dir,
    ):
        params = inspect.signature(func).parameters
        assert list(params)[:2] == ["path", "engine"]
        assert [*fields, *LIMIT_KEYWORDS] == [
            p for p in params if p not in ("path", "engine", "options", "progress")
        ]
        assert params["chunk_size"].default == 8000
        assert params["num_samples_per_chunk"].default == 5
    sync = inspect.signature(InstructionDataset.generate_dataset)
    assert sync == inspect.signature(InstructionDataset.agenerate_dataset)
    assert list(sync.parameters)[:4] == [
        "path",
        "engine",
        "num_instructions_for_finetuning",
        "num_instructions",
    ]
    assert "DirRunOptions" in (InstructionDataset.agenerate_dataset_from_dir.__doc__ or "")


def test_keywords_and_options_make_one_value() -> None:
    base = DirRunOptions(chunk_size=500, limits=ExtractOptions(workers=3, timeout=9))
    opts = DirRunOptions.from_keywords(base, num_samples_per_chunk=2, workers=0, max_bytes=4096)
    assert opts.chunk_size == 500 and opts.num_samples_per_chunk == 2
    assert opts.limits == ExtractOptions(workers=0, timeout=9, max_bytes=4096)
    # a loose limit left at None keeps the field of limits
    assert DirRunOptions.from_keywords(base, timeout=None).limits.timeout == 9
    with pytest.raises(TypeError, match=r"unexpected keyword argument.*chunksize"):
        DirRunOptions.from_keywords(chunksize=10)
    with pytest.raises(ConfigError, match="filters: used only with use_self_instruct=True"):
        DirRunOptions(filters=["rouge"])
    with pytest.raises(ConfigError, match="num_samples_per_chunk must be at least 1"):
        DirRunOptions(num_samples_per_chunk=0)


def test_the_seeds_call_and_an_options_value_give_the_same_dataset(
    wire_server: WireServer, tmp_path: Path
) -> None:
    wire_server.responder = qa_responder("numbered")
    docs = _docs(tmp_path)
    engine = make_engine(wire_server, "openai")
    seed = InstructionDataset.generate_dataset_from_dir(
        path=str(docs),
        engine=engine,
        use_self_instruct=False,
        chunk_size=8000,
        num_samples_per_chunk=5,
        out=tmp_path / "a",
        workers=0,
    )
    assert len(seed) == 3 * 5
    assert seed.run_report["limits"]["workers"] == 0
    calls = len(wire_server.calls)
    again = asyncio.run(
        InstructionDataset.agenerate_dataset_from_dir(
            docs,
            engine,
            options=DirRunOptions(out=tmp_path / "b", cache=tmp_path / "a"),
            workers=0,
        )
    )
    assert list(again) == list(seed)
    assert len(wire_server.calls) == calls  # the cache folder of the first run answered all


# -- cache: a folder ---------------------------------------------------------------------------


def test_cache_names_a_folder(tmp_path: Path) -> None:
    assert cache_folder(tmp_path, None) == tmp_path
    assert cache_folder(True, tmp_path / "out") == tmp_path / "out"
    assert cache_folder(False, tmp_path) is None
    with pytest.raises(ConfigError, match=r"names a folder.*not a file; pass cache="):
        cache_folder(tmp_path / "cache.sqlite3", None)
    assert cache_file(tmp_path) == tmp_path / "cache.sqlite3"
    old = tmp_path / "mine.sqlite3"
    with pytest.warns(DeprecationWarning, match="names a file; cache names the folder"):
        assert cache_file(old) == old
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache_file(tmp_path / "folder") == tmp_path / "folder" / "cache.sqlite3"


def test_generate_dataset_keeps_its_cache_in_the_folder(
    wire_server: WireServer, tmp_path: Path
) -> None:
    from conftest import SHARED

    folder = tmp_path / "c"
    folder.mkdir()

    def run() -> InstructionDataset:
        return InstructionDataset.generate_dataset(
            str(SHARED / "data" / "seed_tasks.jsonl"),
            make_engine(wire_server, "openai"),
            2,
            4,
            cache=folder,
        )

    first = run()
    assert (folder / "cache.sqlite3").is_file()
    calls = len(wire_server.calls)
    assert calls > 0
    assert list(run()) == list(first)
    assert len(wire_server.calls) == calls  # every answer came from FOLDER/cache.sqlite3


# -- the timeout: one owner --------------------------------------------------------------------


def test_the_dispatcher_owns_the_timeout(wire_server: WireServer) -> None:
    engine = make_engine(wire_server, "openai")
    assert engine.timeout == DEFAULT_REQUEST_TIMEOUT == DispatchConfig().timeout
    Dispatcher(engine, config=DispatchConfig(timeout=7.0))
    assert engine.timeout == 7.0
    own = make_engine(wire_server, "openai", timeout=3.0)
    Dispatcher(own, config=DispatchConfig(timeout=7.0))
    assert own.timeout == 3.0  # an engine built with a timeout of its own keeps it


def test_cli_timeout_reaches_the_engine_through_the_dispatcher(
    wire_server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import instructgen.dispatch as dispatch

    wire_server.responder = qa_responder("numbered")
    env = engine_env(wire_server, "openai")
    monkeypatch.setenv(env["key_var"], env["key"])
    seen: list[tuple[float, float]] = []
    original = dispatch.Dispatcher.__init__

    def spy(self: Dispatcher, engine: object, **kw: object) -> None:
        original(self, engine, **kw)  # type: ignore[arg-type]
        seen.append((self.config.timeout, self.engine.timeout))

    monkeypatch.setattr(dispatch.Dispatcher, "__init__", spy)
    r = CliRunner().invoke(
        cli,
        [
            "from-dir",
            str(_docs(tmp_path)),
            "--engine",
            "openai",
            "--base-url",
            env["base_url"],
            "--timeout",
            "33",
            "--workers",
            "0",
            "--out",
            str(tmp_path / "out"),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    assert seen == [(33.0, 33.0)]


# -- run.json's replies report -----------------------------------------------------------------


def test_replies_report_merges_in_dataset_order() -> None:
    full = ChunkPairs(pairs=[("q", "a")] * 2, asked=2, replies=1)
    short = ChunkPairs(pairs=[("q", "a")], asked=2, replies=2, unparsed=1, follow_ups=1)
    report = RepliesReport()
    report.merge(RepliesReport.of_chunk(short, "b.txt", 0, (1, 0)))
    report.merge(RepliesReport.of_chunk(full, "a.txt", 0, (0, 0)))
    report.merge(RepliesReport.of_chunk(short, "a.txt", 1, (0, 1)))
    d = report.to_dict()
    assert list(d) == ["replies", "unparsed_replies", "follow_up_requests", "short_chunks"]
    assert (d["replies"], d["unparsed_replies"], d["follow_up_requests"]) == (5, 2, 2)
    assert [(s["file"], s["chunk"]) for s in d["short_chunks"]] == [("a.txt", 1), ("b.txt", 0)]
    back = RepliesReport.from_dict(json.loads(json.dumps(d)))
    assert back.to_dict() == d
    assert RepliesReport.from_dict(None).to_dict()["short_chunks"] == []

"""Each hook exercised with an in-process plugin registered and unregistered again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import instructgen
from instructgen import (
    Completion,
    Engine,
    Exporter,
    Extracted,
    Extractor,
    Filter,
    Request,
    UnknownNameError,
    hookimpl,
)
from instructgen import plugins as pm
from instructgen.registry import (
    EngineRegistry,
    ExporterRegistry,
    ExtractorRegistry,
    FilterRegistry,
)


class EchoEngine(Engine):
    name = "test-echo"
    needs_key = False
    default_model = "echo-1"

    async def acomplete(self, request: Request) -> Completion:
        return Completion((request.as_prompt(),), ("stop",))


class ShortFilter(Filter):
    name = "test-short"

    def check(self, item: Any) -> str | None:
        return "too short" if len(str(item)) < 5 else None


class CountExporter(Exporter):
    name = "test-count"
    extension = "txt"

    def export(self, dataset: Any, path: Path) -> Path:
        path.write_text(str(len(dataset)))
        return path


class RotExtractor(Extractor):
    name = "test-rot"
    extensions = (".ROT",)
    priority = 50

    def extract(self, path: Path) -> Extracted:
        import codecs

        return Extracted(codecs.decode(path.read_text(), "rot13"))


class InProcess:
    @hookimpl
    def register_engines(self, registry: EngineRegistry) -> None:
        registry.add(EchoEngine, aliases=("echo",), seed_name="Echo")

    @hookimpl
    def register_filters(self, registry: FilterRegistry) -> None:
        registry.add(ShortFilter, default=False)

    @hookimpl
    def register_exporters(self, registry: ExporterRegistry) -> None:
        registry.add(CountExporter, aliases=("count",))

    @hookimpl
    def register_extractors(self, registry: ExtractorRegistry) -> None:
        registry.add(RotExtractor)


@pytest.fixture
def plugin() -> Iterator[str]:
    name = instructgen.register_plugin(InProcess(), name="in-process-test")
    try:
        yield name
    finally:
        instructgen.unregister_plugin(name)


def test_hook_register_engines(plugin: str) -> None:
    reg = pm.engines()
    assert reg.entry("test-echo").plugin == plugin
    engine = instructgen.engine("ECHO:echo-2")
    assert isinstance(engine, EchoEngine) and engine.model == "echo-2"
    assert asyncio.run(engine.acomplete(Request.chat("ping"))).text == "ping"
    from instructgen.engines import Echo  # type: ignore[attr-defined]

    assert Echo is EchoEngine


def test_hook_register_filters(plugin: str) -> None:
    entry = pm.filters().entry("test-short")
    assert entry.plugin == plugin and entry.meta == {"default": False, "stage": "instruction"}
    f = entry.obj()
    assert f.check("abc") == "too short" and f.check("long enough") is None


def test_hook_register_exporters(plugin: str, tmp_path: Path) -> None:
    exporter = pm.exporters().get("count")()
    out = exporter.export([1, 2, 3], tmp_path / "n.txt")
    assert out.read_text() == "3"


def test_hook_register_extractors(plugin: str, tmp_path: Path) -> None:
    reg = pm.extractors()
    assert [e.name for e in reg.for_extension("rot")][:1] == ["test-rot"]
    p = tmp_path / "a.rot"
    p.write_text("uryyb")
    assert reg.get("test-rot")().extract(p).text == "hello"


def test_unregister_removes_everything(plugin: str) -> None:
    instructgen.unregister_plugin(plugin)
    with pytest.raises(UnknownNameError):
        instructgen.engine("echo")
    instructgen.register_plugin(InProcess(), name=plugin)  # the fixture unregisters it again


def test_loading_is_idempotent() -> None:
    first = pm.load_plugins()
    count = len(pm.pm.get_plugins())
    assert pm.load_plugins() is first
    assert len(pm.pm.get_plugins()) == count


def test_engine_repr_and_errors_hide_the_key() -> None:
    class Keyed(EchoEngine):
        name = "test-keyed"
        needs_key = True
        key_env_vars = ("TEST_KEYED_API_KEY",)

    secret = "sk-test-SECRET-1234567890"
    e = Keyed(secret)
    assert secret not in repr(e) and "***" in repr(e)
    assert secret not in json.dumps(e.identity())
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(e)
    with pytest.raises(instructgen.MissingKeyError) as err:
        Keyed()
    assert "TEST_KEYED_API_KEY" in str(err.value) and err.value.exit_code == 2


def test_hook_register_executors(tmp_path: Path) -> None:
    """A plugin executor (here: every file read in this process, one after another, newest
    first) is found by name and gives the same dataset as the built-in local executor."""
    import shutil

    from conftest import SHARED
    from selfinstruct_responder import respond
    from wire_server import WireServer

    from instructgen import InstructionDataset
    from instructgen.documents import extract_one
    from instructgen.executor import Executor

    read: list[str] = []

    class SerialExecutor(Executor):
        name = "serial"

        def read(self, jobs, options, stop):  # type: ignore[no-untyped-def]
            for job in reversed(jobs):  # the order of results does not matter
                read.append(job.rel)
                yield job.position, extract_one(job.path, job.rel, job.size, options.chunk_size)

    class ExecutorPlugin:
        @hookimpl
        def register_executors(self, registry: object) -> None:
            registry.add(SerialExecutor)  # type: ignore[attr-defined]

    docs = tmp_path / "docs"
    shutil.copytree(SHARED / "corpus" / "language-docs", docs)
    name = instructgen.register_plugin(ExecutorPlugin(), name="executor-test")
    try:
        assert pm.executors().entry("serial").plugin == "executor-test"
        assert pm.executors().entry("local").plugin == "instructgen"
        with WireServer() as server:
            server.responder = respond
            engine = instructgen.engine("openai", api_key="k", base_url=server.openai_base_url)
            serial = InstructionDataset.generate_dataset_from_dir(
                docs, engine, executor="serial", num_samples_per_chunk=2, cache=False
            )
            local = InstructionDataset.generate_dataset_from_dir(
                docs, engine, num_samples_per_chunk=2, cache=False
            )
        assert len(serial) == len(local) > 0
        assert serial.rows == local.rows
        assert serial.run_report["executor"] == "serial"
        assert sorted(read) == sorted(f["rel"] for f in serial.run_report["files"] if f["chars"])
    finally:
        instructgen.unregister_plugin(name)

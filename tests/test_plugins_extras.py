"""Optional dependencies (the ``documents``, ``cohere``, ``ai21``, ``audio`` extras).

A plugin whose module is not installed stays listed as unavailable with the pip command that
brings it; a file that needs it is skipped with that reason; asking for such an engine is a
usage error (exit 2). Missing modules are simulated in a subprocess by a meta path finder that
refuses them, as an interpreter without the extra would; and in process by a fixture plugin
whose declared module does not exist.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from conftest import SHARED

import instructgen
from instructgen import plugins
from instructgen.documents.extract_cache import result_to_cache
from instructgen.documents.routing import extract_one
from instructgen.engines import Completion, Engine, Request
from instructgen.errors import MissingDependencyError
from instructgen.extractor import Extracted, Extractor
from instructgen.registry import EngineRegistry, ExtractorRegistry, missing_requirement

# Runs the CLI with the modules named in BLOCK_MODULES refused, like a base-only install.
MAIN = """
import os, sys
blocked = set(os.environ["BLOCK_MODULES"].split(","))
class Refuse:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Refuse)
from instructgen.cli import main
main(sys.argv[1:])
"""

# The modules the base install does not bring (lxml stays: other packages may bring it).
NOT_IN_BASE = "cohere,ai21,docx,pptx,openpyxl,xlrd,striprtf,oxmsg,unstructured,pypdfium2,PIL"
DOCS = "pip install 'instructgen[documents]'"


def cli(*args: str, blocked: str = NOT_IN_BASE) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTRUCTGEN_")}
    env["BLOCK_MODULES"] = blocked
    return subprocess.run(
        [sys.executable, "-c", MAIN, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in (
        "fake-text.txt",
        "docx-tables.docx",
        "fake-power-point.pptx",
        "example-10k-1p.html",
        "fake-doc.rtf",
    ):
        shutil.copy(SHARED / "corpus" / name, docs / name)
    shutil.copy(next((SHARED / "corpus").rglob("*.pdf")), docs / "paper.pdf")
    return docs


def test_plugins_lists_what_a_base_install_cannot_run_with_the_pip_command() -> None:
    r = cli("plugins", "--json")
    assert r.returncode == 0, r.stderr
    rows = {p["name"]: p for p in json.loads(r.stdout)["plugins"]}
    assert rows["cohere"]["unavailable"] == {
        "engine cohere": "needs pip install 'instructgen[cohere]' (missing module: cohere)"
    }
    assert rows["ai21"]["unavailable"] == {
        "engine ai21": "needs pip install 'instructgen[ai21]' (missing module: ai21)"
    }
    for name in ("office", "pdf", "ocr", "unstructured"):
        (why,) = rows[name]["unavailable"].values()
        assert why.startswith(f"needs {DOCS} (missing module"), why
    assert rows["pdf"]["unavailable"]["extractor pdf"].endswith("(missing modules: pypdfium2, PIL)")
    # Still registered (listed, blockable), and what the base install brings is available.
    assert rows["cohere"]["registers"] == {"engines": ["cohere"]}
    for name in ("openai", "text", "filters", "exporters"):
        assert rows[name]["unavailable"] == {} and rows[name]["error"] is None

    text = cli("plugins").stdout
    assert "cohere [instructgen" in text and "(unavailable)" in text
    assert "  unavailable: engine cohere needs pip install 'instructgen[cohere]'" in text


@pytest.mark.parametrize("engine", ["cohere", "medium", "ai21"])
def test_an_engine_without_its_extra_exits_2_with_the_pip_command(
    tmp_path: Path, engine: str
) -> None:
    tasks = tmp_path / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    for extra in ([], ["--dry-run"]):
        r = cli("generate", str(tasks), "--engine", engine, "--out", str(tmp_path / "o"), *extra)
        assert r.returncode == 2, r.stderr
        which = "ai21" if engine == "ai21" else "cohere"
        assert r.stderr.strip().splitlines()[-1] == (
            f"error: engine '{which}' needs pip install 'instructgen[{which}]' "
            f"(missing module: {which})"
        )
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()


def test_files_needing_a_missing_extra_are_skipped_with_the_reason_then_read_once_installed(
    folder: Path,
) -> None:
    r = cli("extract", str(folder), "--json")
    assert r.returncode == 0, r.stderr
    files = {f["rel"]: f for f in json.loads(r.stdout)["files"]}
    assert files["fake-text.txt"]["skip"] is None and files["fake-text.txt"]["chars"] > 0
    # HTML and RTF are not read as plain text (markup) when their readers need the extra.
    for rel in (
        "docx-tables.docx",
        "fake-power-point.pptx",
        "paper.pdf",
        "example-10k-1p.html",
        "fake-doc.rtf",
    ):
        assert files[rel]["skip"].startswith(f"needs {DOCS} (missing module"), files[rel]
    # The reason is not cached: with the extra installed, the same folder's files are read.
    r = cli("extract", str(folder), "--json", blocked="")
    files = {f["rel"]: f for f in json.loads(r.stdout)["files"]}
    assert all(f["skip"] is None and f["chars"] > 0 for f in files.values()), files


def test_from_dir_lists_the_skip_reason(folder: Path, tmp_path: Path) -> None:
    r = cli(
        "from-dir",
        str(folder),
        "--engine",
        "openai",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--dry-run",
        "--json",
        "--out",
        str(tmp_path / "o"),
    )
    assert r.returncode == 0, r.stderr
    skipped = {s["file"]: s["reason"] for s in json.loads(r.stdout)["skipped_files"]}
    assert set(skipped) == {
        "docx-tables.docx",
        "fake-power-point.pptx",
        "paper.pdf",
        "example-10k-1p.html",
        "fake-doc.rtf",
    }
    assert (
        skipped["docx-tables.docx"]
        == f"needs {DOCS} (missing modules: docx, pptx, openpyxl, xlrd, striprtf, oxmsg)"
    )


# -- in process: a fixture plugin whose declared module is absent -----------------------------


class _NeedsNothingThere:
    requires: ClassVar[tuple[str, ...]] = ("instructgen_no_such_module_here",)
    install_with: ClassVar[str] = "instructgen-fixture[extra]"


class AbsentEngine(_NeedsNothingThere, Engine):
    name = "absent-sdk"
    needs_key = False

    async def acomplete(self, request: Request) -> Completion:  # pragma: no cover - never built
        raise AssertionError("an unavailable engine must not be built")


class AbsentExtractor(_NeedsNothingThere, Extractor):
    name = "absent-reader"
    extensions = ("absentfmt",)

    def extract(self, path: Path) -> Extracted:  # pragma: no cover - never called
        raise AssertionError("an unavailable extractor must not be called")


class _Plugin:
    @staticmethod
    @instructgen.hookimpl
    def register_engines(registry: EngineRegistry) -> None:
        registry.add(AbsentEngine)

    @staticmethod
    @instructgen.hookimpl
    def register_extractors(registry: ExtractorRegistry) -> None:
        registry.add(AbsentExtractor)


@pytest.fixture
def absent_plugin() -> Iterator[str]:
    name = plugins.register_plugin(_Plugin, name="absent-fixture")
    try:
        yield name
    finally:
        plugins.unregister_plugin(name)


WHY = (
    "needs pip install 'instructgen-fixture[extra]' "
    "(missing module: instructgen_no_such_module_here)"
)


def test_declared_requirement_is_checked_without_importing(absent_plugin: str) -> None:
    assert missing_requirement(AbsentEngine) == WHY
    assert missing_requirement(type("Fine", (), {"requires": ("json", "os.path")})) is None
    assert plugins.engines().unavailable() == {"absent-sdk": WHY}
    assert plugins.extractors().unavailable() == {"absent-reader": WHY}
    assert "absent-sdk" in plugins.engines().names()
    with pytest.raises(MissingDependencyError) as info:
        instructgen.engine("absent-sdk")
    assert str(info.value) == f"engine 'absent-sdk' {WHY}"
    assert info.value.exit_code == 2


def test_a_file_for_an_unavailable_extractor_is_skipped_and_not_cached(
    absent_plugin: str, tmp_path: Path
) -> None:
    f = tmp_path / "x.absentfmt"
    f.write_bytes(b"\x00\x01ABSENT\xff\x00")  # no other reader recognises it
    res = extract_one(str(f), f.name)
    assert res.text is None and res.skip == WHY
    assert result_to_cache(res) is None

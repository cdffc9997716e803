"""The house's floors: no import points up, the public plugin API is enough for plugins, and the
rooms that used to be half-alive (MIME routing, filter stages) do what they say."""

from __future__ import annotations

import ast
import mimetypes
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from folder_reading import read_folder

import instructgen
from instructgen import Extracted, Extractor, Filter, hookimpl

ROOT = Path(__file__).resolve().parent.parent


class MimeOnly(Extractor):
    """Names no extension: only the MIME type it reads."""

    name = "test-mime-only"
    mime_types = ("application/x-instructgen-test",)

    def extract(self, path: Path) -> Extracted:
        return Extracted("read by MIME type: " + path.read_bytes().hex())


class MimePlugin:
    @hookimpl
    def register_extractors(self, registry: Any) -> None:
        registry.add(MimeOnly)


def test_files_are_routed_by_the_mime_type_of_their_extension(tmp_path: Path) -> None:
    mimetypes.add_type("application/x-instructgen-test", ".igt")
    # binary content, so no extractor recognises it: only the MIME type can route it
    (tmp_path / "a.igt").write_bytes(b"\x00\xff")
    (tmp_path / "b.zzz-unknown").write_bytes(b"\x00\xff")
    name = instructgen.register_plugin(MimePlugin(), name="mime-test")
    try:
        by = {f.rel: f for f in read_folder(tmp_path, workers=0).files}
    finally:
        instructgen.unregister_plugin(name)
    assert by["a.igt"].extractor == "test-mime-only"
    assert by["a.igt"].text == "read by MIME type: 00ff"
    assert by["b.zzz-unknown"].skip == "no extractor for '.zzz-unknown' files"


class InstanceStage(Filter):
    name = "test-instance-stage"
    stage = "instance"  # type: ignore[assignment]  # what plugins written for it declared

    def check(self, item: Any) -> str | None:
        return None


class InstanceFilterPlugin:
    @hookimpl
    def register_filters(self, registry: Any) -> None:
        registry.add(InstanceStage)


def test_a_filter_for_a_stage_no_pipeline_runs_is_left_out_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from instructgen import plugins

    name = instructgen.register_plugin(InstanceFilterPlugin(), name="instance-filter-test")
    try:
        assert "test-instance-stage" not in plugins.filters()
    finally:
        instructgen.unregister_plugin(name)
    assert "stage 'instance' is not run by any pipeline" in caplog.text


def test_the_local_executor_is_the_cores_own_and_survives_a_reset() -> None:
    from instructgen import plugins
    from instructgen.runs import LocalExecutor

    assert plugins.executors().entry("local").plugin == "instructgen"
    plugins.reset()
    assert plugins.executors().get("local") is LocalExecutor


def test_a_reset_forgets_blocked_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    from instructgen import plugins

    monkeypatch.setenv("INSTRUCTGEN_BLOCK_PLUGINS", "text")
    plugins.reset()
    try:
        assert plugins.load_plugins()["text"].blocked
        assert "text" not in plugins.extractors()
        monkeypatch.delenv("INSTRUCTGEN_BLOCK_PLUGINS")
        plugins.reset()
        assert not plugins.load_plugins()["text"].blocked
        assert "text" in plugins.extractors()
    finally:
        monkeypatch.delenv("INSTRUCTGEN_BLOCK_PLUGINS", raising=False)
        plugins.reset()


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
    return out


@pytest.mark.parametrize(
    "package",
    [
        "contrib/instructgen-ray/instructgen_ray",
        "contrib/instructgen-plugin-template/instructgen_template_engine",
        "contrib/instructgen-litellm/instructgen_litellm",
        "plugins/instructgen_openai",
        "plugins/instructgen_cohere",
        "plugins/instructgen_ai21",
        "plugins/instructgen_filters",
        "plugins/instructgen_exporters",
        "plugins/instructgen_doc",
        "plugins/instructgen_audio",
    ],
)
def test_plugins_import_only_the_public_api(package: str) -> None:
    for path in (ROOT / package).rglob("*.py"):
        private = [m for m in _imports(path) if m.startswith("instructgen.")]
        assert private == [], f"{path.relative_to(ROOT)} imports {private}"


def test_every_public_name_resolves() -> None:
    missing = [n for n in instructgen.__all__ if not hasattr(instructgen, n)]
    assert missing == []


def test_every_core_module_is_on_a_floor() -> None:
    """A new core module must be given a floor in pyproject.toml's layers contract."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (layers,) = [
        c["layers"] for c in config["tool"]["importlinter"]["contracts"] if c["id"] == "layers"
    ]
    floors = [{m.strip() for m in layer.replace("|", ":").split(":")} for layer in layers]
    core = ROOT / "core"
    lazy_packages = {"instructgen", "instructgen.documents", "instructgen.selfinstruct"}
    for path in sorted((core / "instructgen").rglob("*.py")):
        parts = list(path.relative_to(core).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        module = ".".join(parts)
        if module in lazy_packages:  # their __init__ resolves names lazily, imports nothing
            continue
        homes = [
            i
            for i, floor in enumerate(floors)
            if any(module == m or module.startswith(m + ".") for m in floor)
        ]
        assert len(homes) == 1, f"{module} is on {len(homes)} floors (pyproject.toml)"


def test_the_import_contracts_hold() -> None:
    """import-linter: core's floors (and the plugins' independence) as pyproject.toml says."""
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    r = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]


def test_one_gathering_function_keeps_errors_as_values_and_stops_on_a_wrong_key() -> None:
    import asyncio

    from instructgen import AuthenticationError, RateLimitError
    from instructgen.dispatch import gather_values

    cancelled: list[str] = []

    async def ok(v: str) -> str:
        await asyncio.sleep(0)
        return v

    async def fails(exc: Exception) -> str:
        await asyncio.sleep(0)
        raise exc

    async def slow() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append("slow")
            raise
        return "late"

    busy = RateLimitError("busy")
    out = asyncio.run(gather_values([ok("a"), fails(busy), ok("c")]))
    assert out == ["a", busy, "c"]

    with pytest.raises(AuthenticationError):
        asyncio.run(gather_values([slow(), fails(AuthenticationError("bad key"))]))
    assert cancelled == ["slow"]  # the others stop at once
    kept = asyncio.run(gather_values([fails(AuthenticationError("bad key"))], stop_on=()))
    assert isinstance(kept[0], AuthenticationError)


def test_both_dry_runs_use_the_engines_price(tmp_path: Path) -> None:
    """The from-dir dry run prices its requests with the engine's price table, as generate's."""
    import json

    from click.testing import CliRunner

    from instructgen.cli import cli

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The lighthouse keeper lit the lamp at dusk. " * 50)
    r = CliRunner().invoke(
        cli, ["from-dir", str(docs), "--engine", "openai", "--dry-run", "--json", "--workers", "0"]
    )
    assert r.exit_code == 0, r.stderr
    est = json.loads(r.stdout)
    assert est["requests"] == 1 and est["prompt_tokens"] > 0
    assert est["max_cost_usd"] is not None and est["max_cost_usd"] > 0

"""Third-party plugins, installed for real from tests/fixtures into a private target folder and
exercised through the CLI in subprocesses: discovered, listed, usable, blockable, isolated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def _install(target: Path, *names: str) -> None:
    for name in names:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--no-build-isolation",
                "--disable-pip-version-check",
                "--no-compile",
                "--target",
                str(target),
                str(FIXTURES / name),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )


@pytest.fixture(scope="session")
def good_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site-good")
    _install(target, "instructgen-fixture-plugin")
    return target


@pytest.fixture(scope="session")
def mixed_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site-mixed")
    _install(target, "instructgen-fixture-plugin", "instructgen-broken-plugin")
    return target


def run(
    site: Path, *args: str, env: dict[str, str] | None = None, code: str | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("INSTRUCTGEN_")}
    full_env["PYTHONPATH"] = str(site)
    full_env.update(env or {})
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "instructgen", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=120)


def plugins_json(site: Path, env: dict[str, str] | None = None) -> dict[str, dict]:
    r = run(site, "plugins", "--json", env=env)
    assert r.returncode == 0, r.stderr
    return {p["name"]: p for p in json.loads(r.stdout)["plugins"]} | {
        "__conflicts__": json.loads(r.stdout)["conflicts"]
    }


def test_discovered_and_listed_with_version(good_site: Path) -> None:
    listed = plugins_json(good_site)
    fixture = listed["fixture"]
    assert fixture["version"] == "1.2.3"
    assert fixture["distribution"] == "instructgen-fixture-plugin"
    assert fixture["error"] is None and fixture["blocked"] is False
    assert fixture["registers"] == {
        "engines": ["fixture-reverse"],
        "extractors": ["fixture-upper"],
        "filters": ["fixture-no-questions"],
        "exporters": ["fixture-lines"],
    }


def test_usable_from_python(good_site: Path) -> None:
    code = (
        "import asyncio, instructgen\n"
        "from instructgen import Request\n"
        "from instructgen.engines import Reverse\n"
        "e = instructgen.engine('reverse')\n"
        "assert type(e) is Reverse, type(e)\n"
        "print(asyncio.run(e.acomplete(Request.chat('stressed'))).text)\n"
    )
    r = run(good_site, code=code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "desserts"


def test_blocked_by_env(good_site: Path) -> None:
    listed = plugins_json(good_site, {"INSTRUCTGEN_BLOCK_PLUGINS": "fixture"})
    assert listed["fixture"]["blocked"] is True
    assert listed["fixture"]["registers"] == {}
    r = run(
        good_site,
        code="import instructgen; instructgen.engine('reverse')",
        env={"INSTRUCTGEN_BLOCK_PLUGINS": "fixture"},
    )
    assert r.returncode != 0 and "unknown engine 'reverse'" in r.stderr


def test_allow_list_and_empty_allow_list(good_site: Path) -> None:
    only = plugins_json(good_site, {"INSTRUCTGEN_LOAD_PLUGINS": "fixture"})
    loaded = [n for n, p in only.items() if n != "__conflicts__" and not p["blocked"]]
    assert loaded == ["fixture"]
    none = plugins_json(good_site, {"INSTRUCTGEN_LOAD_PLUGINS": ""})
    assert all(p["blocked"] for n, p in none.items() if n != "__conflicts__")


def test_broken_plugins_are_isolated(mixed_site: Path, tmp_path: Path) -> None:
    tasks = tmp_path / "t.jsonl"
    tasks.write_text(
        '{"id": "a", "instruction": "Say hi.", "instances": [{"input": "", "output": "hi"}]}\n'
    )
    r = run(mixed_site, "validate", str(tasks))
    assert r.returncode == 0, r.stderr
    warnings = [ln for ln in r.stderr.splitlines() if "broken" in ln]
    assert warnings == []  # validate does not need plugins: nothing loaded, nothing to warn

    r = run(mixed_site, "plugins", "--json")
    assert r.returncode == 0
    listed = {p["name"]: p for p in json.loads(r.stdout)["plugins"]}
    assert "this plugin is broken on purpose" in listed["broken-import"]["error"]
    assert "exporter hook exploded" in listed["zz-broken-hook"]["error"]
    assert listed["fixture"]["error"] is None
    # one warning line per broken plugin, naming it
    for name in ("broken-import", "zz-broken-hook"):
        disabled = [ln for ln in r.stderr.splitlines() if f"plugin '{name}' disabled" in ln]
        assert len(disabled) == 1, r.stderr
    # the fixture plugin still works next to them
    r = run(
        mixed_site, code="import instructgen; print(type(instructgen.engine('reverse')).__name__)"
    )
    assert r.stdout.strip() == "ReverseEngine", r.stderr


def test_name_conflict_has_a_deterministic_winner_and_a_warning(mixed_site: Path) -> None:
    r = run(mixed_site, "plugins", "--json")
    payload = json.loads(r.stdout)
    assert any(
        "'fixture-reverse' from plugin 'zz-broken-hook' ignored" in c and "'fixture'" in c
        for c in payload["conflicts"]
    )
    listed = {p["name"]: p for p in payload["plugins"]}
    assert listed["fixture"]["registers"]["engines"] == ["fixture-reverse"]
    assert "engines" not in listed["zz-broken-hook"]["registers"]


def test_strict_mode_raises(mixed_site: Path) -> None:
    r = run(mixed_site, "plugins", env={"INSTRUCTGEN_STRICT_PLUGINS": "1"})
    assert r.returncode == 1
    assert "plugin 'broken-import'" in r.stderr and "Traceback" not in r.stderr


def test_trace(good_site: Path) -> None:
    r = run(good_site, "plugins", env={"INSTRUCTGEN_TRACE_PLUGINS": "1"})
    assert "[instructgen.plugins] loaded fixture" in r.stderr
    assert "[instructgen.plugins] register_engines -> fixture" in r.stderr

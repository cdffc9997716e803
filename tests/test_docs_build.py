"""The docs build strictly (a broken link fails) and the CLI reference comes from the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mkdocs")
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert r.returncode == 0, r.stderr
    return out


def test_cli_reference_lists_every_command(site: Path) -> None:
    from instructgen.cli import COMMANDS, cli

    html = (site / "cli" / "index.html").read_text()
    import click

    for name in cli.list_commands(click.Context(cli)):
        assert f"instructgen {name}" in html, name
    assert set(cli.list_commands(click.Context(cli))) <= set(COMMANDS)
    assert "--num-instructions-for-finetuning" in html and "--samples-per-chunk" in html


def test_every_page_is_built(site: Path) -> None:
    for page in (
        "index.html",
        "tasks/index.html",
        "documents/index.html",
        "engines/index.html",
        "python-api/index.html",
        "plugins/guide/index.html",
        "plugins/hooks/index.html",
        "architecture/index.html",
        "benchmarks/index.html",
    ):
        assert (site / page).is_file(), page


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    import shutil

    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    with (tmp_path / "docs" / "index.md").open("a") as fh:
        fh.write("\nSee [nowhere](no-such-page.md).\n")
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert r.returncode != 0
    assert "no-such-page.md" in r.stderr


def test_a_missing_hook_fails_the_build(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    import shutil

    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    hooks = tmp_path / "docs" / "plugins" / "hooks.md"
    hooks.write_text(
        hooks.read_text().replace(
            "register_filters(registry: FilterRegistry) -> None", "register_filters(...)"
        )
    )
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert r.returncode != 0
    assert "lacks hook signatures: register_filters" in r.stderr

"""The docs build strictly (a broken link fails) and the CLI reference comes from the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def mkdocs_build(project: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` of the project in ``project`` into ``out``."""
    pytest.importorskip("mkdocs")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    r = mkdocs_build(ROOT, out)
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


def build_edited_copy(
    tmp_path: Path, edit: Callable[[Path], None]
) -> subprocess.CompletedProcess[str]:
    """Build a copy of the docs, changed by ``edit(docs_dir)``, with --strict."""
    import shutil

    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    edit(tmp_path / "docs")
    return mkdocs_build(tmp_path, tmp_path / "site")


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    def add_broken_link(docs: Path) -> None:
        with (docs / "index.md").open("a") as fh:
            fh.write("\nSee [nowhere](no-such-page.md).\n")

    r = build_edited_copy(tmp_path, add_broken_link)
    assert r.returncode != 0
    assert "no-such-page.md" in r.stderr


def test_a_missing_hook_fails_the_build(tmp_path: Path) -> None:
    def drop_a_signature(docs: Path) -> None:
        hooks = docs / "plugins" / "hooks.md"
        hooks.write_text(
            hooks.read_text().replace(
                "register_filters(registry: FilterRegistry) -> None", "register_filters(...)"
            )
        )

    r = build_edited_copy(tmp_path, drop_a_signature)
    assert r.returncode != 0
    assert "lacks hook signatures: register_filters" in r.stderr

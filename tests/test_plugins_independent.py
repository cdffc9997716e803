"""No built-in plugin imports another: a helper two plugins need lives in core's public plugin
API (``instructgen.content``, ``instructgen.extract_file``), so any plugin can be blocked or
replaced alone. Checked by import-linter's ``independence`` contract in pyproject.toml, which
counts imports inside functions too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _contract() -> dict[str, object]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c.get("id") == "plugins-independent")


def test_the_contract_names_every_built_in_plugin() -> None:
    packages = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").exists())
    assert packages and sorted(_contract()["modules"]) == packages  # type: ignore[arg-type]


def _lint(env_path: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": env_path}
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml"), "--contract", "plugins-independent"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )


def test_no_built_in_plugin_imports_another() -> None:
    out = _lint(f"{ROOT / 'core'}{os.pathsep}{ROOT / 'plugins'}")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "1 kept, 0 broken" in out.stdout


def test_a_plugin_importing_another_breaks_the_contract(tmp_path: Path) -> None:
    # The same tree with one plugin reaching into another, inside a function as real code did.
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    for pkg in (ROOT / "plugins").iterdir():
        if (pkg / "__init__.py").exists():
            (plugins / pkg.name).symlink_to(pkg)
    (plugins / "instructgen_pdf").unlink()
    pdf = plugins / "instructgen_pdf"
    pdf.mkdir()
    source = (ROOT / "plugins/instructgen_pdf/__init__.py").read_text(encoding="utf-8")
    (pdf / "__init__.py").write_text(
        source + "\n\ndef _ocr():\n    from instructgen_ocr import ocr\n\n    return ocr\n",
        encoding="utf-8",
    )
    out = _lint(f"{ROOT / 'core'}{os.pathsep}{plugins}")
    assert out.returncode != 0
    assert "instructgen_pdf is not allowed to import instructgen_ocr" in out.stdout

"""Meta-tests: every hook has a test and its exact signature in docs/plugins/hooks.md."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from instructgen import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = sorted(
    name
    for name, obj in vars(hookspecs).items()
    if callable(obj) and hasattr(obj, "instructgen_spec")
)


def test_there_are_hooks() -> None:
    assert {
        "register_engines",
        "register_extractors",
        "register_filters",
        "register_exporters",
    } <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook: str) -> None:
    pattern = re.compile(rf"def test_hook_{hook}\b")
    assert any(pattern.search(p.read_text()) for p in Path(__file__).parent.glob("test_*.py")), (
        f"no test named test_hook_{hook}"
    )


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_with_its_signature(hook: str) -> None:
    sig = inspect.signature(getattr(hookspecs, hook))
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    expected = f"{hook}({params}) -> {sig.return_annotation}"
    docs = (ROOT / "docs" / "plugins" / "hooks.md").read_text()
    assert f"## {hook}" in docs
    assert expected in docs, f"docs/plugins/hooks.md lacks the signature {expected!r}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_docstring(hook: str) -> None:
    assert (getattr(hookspecs, hook).__doc__ or "").strip()


def test_every_environment_variable_read_is_documented() -> None:
    """docs/environment.md lists every variable the core and the built-in plugins read."""
    import re

    root = Path(__file__).resolve().parents[1]
    names: set[str] = set()
    pattern = re.compile(
        r"""(?:environ\.get\(|environ\[|_env_list\(|setdefault\()\s*["']([A-Z][A-Z0-9_]+)["']"""
    )
    for path in [*root.glob("core/instructgen/**/*.py"), *root.glob("plugins/*/**/*.py")]:
        text = path.read_text()
        names.update(pattern.findall(text))
        for group in re.findall(r"key_env_vars\s*=\s*\(([^)]*)\)", text):
            names.update(re.findall(r"[\"']([A-Z][A-Z0-9_]+)[\"']", group))
    assert {"OPENAI_API_KEY", "INSTRUCTGEN_WORKER_START", "OMP_THREAD_LIMIT"} <= names
    documented = (root / "docs" / "environment.md").read_text()
    missing = sorted(n for n in names if f"`{n}" not in documented)
    assert not missing, f"add to docs/environment.md: {missing}"

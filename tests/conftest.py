from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from wire_server import WireServer

SHARED = Path(__file__).resolve().parents[2] / "shared"
ENGINES = ["openai", "openai-completions", "cohere", "ai21"]
TEST_KEY = "sk-test-DO-NOT-LEAK-0123456789"
# The 25 formats of the corpus (its NOTICE.md), as file extensions.
FORMATS_25 = frozenset(
    [
        ".csv",
        ".doc",
        ".docx",
        ".eml",
        ".epub",
        ".gif",
        ".jpg",
        ".jpeg",
        ".json",
        ".html",
        ".htm",
        ".mp3",
        ".msg",
        ".odt",
        ".ogg",
        ".pdf",
        ".png",
        ".pptx",
        ".rtf",
        ".tiff",
        ".tif",
        ".txt",
        ".wav",
        ".xlsx",
        ".xls",
    ]
)
assert len(FORMATS_25) == 25


@pytest.fixture
def wire_server() -> Iterator[WireServer]:
    with WireServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "CO_API_KEY",
        "COHERE_API_KEY",
        "CO_API_URL",
        "AI21_API_KEY",
        "AI21_API_HOST",
        "INSTRUCTGEN_LOAD_PLUGINS",
        "INSTRUCTGEN_BLOCK_PLUGINS",
        "INSTRUCTGEN_STRICT_PLUGINS",
    ):
        monkeypatch.delenv(var, raising=False)


def make_engine(server: WireServer, name: str, key: str = TEST_KEY, **kw: Any) -> Any:
    """A real engine (real SDK) pointed at the local wire server."""
    import instructgen

    return instructgen.engine(name, api_key=key, base_url=server.base_url_for(name), **kw)


def engine_env(server: WireServer, name: str, key: str = TEST_KEY) -> dict[str, str]:
    """Environment and CLI flags for running `instructgen` against the wire server."""
    return {
        "key_var": {
            "openai": "OPENAI_API_KEY",
            "openai-completions": "OPENAI_API_KEY",
            "cohere": "CO_API_KEY",
            "ai21": "AI21_API_KEY",
        }[name],
        "key": key,
        "base_url": server.base_url_for(name),
    }


def registered_as_installed(kind: str, name: str, module: Any, plugin: str) -> Iterator[None]:
    """For an autouse fixture: the built-in plugin ``module`` registers ``name`` among the
    ``kind`` (``filters``, ``methods``) as its entry point does; registered in-process for the
    test when the installed metadata predates the entry point."""
    import instructgen
    from instructgen import plugins

    if name in getattr(plugins, kind)():
        yield
        return
    registered = instructgen.register_plugin(module, name=plugin)
    try:
        yield
    finally:
        instructgen.unregister_plugin(registered)

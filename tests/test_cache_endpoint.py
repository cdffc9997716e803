"""The cache knows which server answered: the same request to another base URL (same engine,
same model name) is a miss and is sent, while caches made against the provider's default URL
before endpoints entered the key are still read."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import ENGINES, TEST_KEY, make_engine
from wire_server import WireServer

import instructgen
from instructgen import ConfigError, Request
from instructgen.cache import Cache
from instructgen.dispatch import Dispatcher
from instructgen.engines import Completion

DEFAULT_URLS = {
    "openai": "https://api.openai.com/v1",
    "openai-completions": "https://api.openai.com/v1",
    "cohere": "https://api.cohere.com",
    "ai21": "https://api.ai21.com/studio/v1",
}


def old_key(engine: Any, request: Request, sample: int = 0) -> str:
    """A cache key as written before the endpoint was part of the identity."""
    payload = json.dumps(
        {
            "engine": {"engine": engine.name, "model": engine.model, "kind": engine.kind},
            "request": request.canonical(),
            "sample": sample,
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


async def run_all(engine: Any, cache: Cache, requests: list[Request]) -> Dispatcher:
    async with Dispatcher(engine, cache=cache) as d:
        out = await d.complete_many(requests)
    assert all(isinstance(c, Completion) for c in out), out
    return d


@pytest.mark.parametrize("name", ENGINES)
def test_another_base_url_is_another_server(name: str, tmp_path: Path) -> None:
    requests = [Request.chat(f"question {i}", max_tokens=20) for i in range(3)]
    cache = Cache(tmp_path / "cache.sqlite3")
    with WireServer() as first, WireServer() as second:
        first.responder = lambda call: "from the first server"
        second.responder = lambda call: "from the second server"
        asyncio.run(run_all(make_engine(first, name), cache, requests))
        d = asyncio.run(run_all(make_engine(second, name), cache, requests))
        assert len(second.prompt_calls) == 3 and d.stats.cached == 0
        # Both servers' answers are kept: back on the first, nothing is sent.
        d = asyncio.run(run_all(make_engine(first, name), cache, requests))
        assert len(first.prompt_calls) == 3 and d.stats.cached == 3
    cache.close()


@pytest.mark.parametrize("name", ENGINES)
def test_old_cache_is_still_read_for_the_default_url(name: str, tmp_path: Path) -> None:
    request = Request.chat("an old question", max_tokens=20)
    path = tmp_path / "cache.sqlite3"
    old = instructgen.engine(name, api_key=TEST_KEY)
    with Cache(path) as cache:
        cache.put(old_key(old, request), Completion(("cached before the upgrade",), ("stop",)))
    default = DEFAULT_URLS[name]
    host, _, url_path = default.partition("://")[2].partition("/")
    shouting = "HTTPS://" + host.upper() + "/" + url_path  # paths keep their case
    spellings = [None, default, default + "/", shouting, default.replace(".com", ".com:443", 1)]
    for base_url in spellings:
        engine = instructgen.engine(name, api_key=TEST_KEY, base_url=base_url)
        assert "endpoint" not in engine.identity(), base_url
        cache = Cache(path)
        # No server exists at the provider URL here: an answer proves the cache was read.
        got = asyncio.run(run_cached(engine, cache, request))
        cache.close()
        assert got.text == "cached before the upgrade", base_url


async def run_cached(engine: Any, cache: Cache, request: Request) -> Completion:
    async with Dispatcher(engine, cache=cache) as d:
        c = await d.complete(request)
    assert d.stats.cached == 1 and d.stats.sent == 0
    return c


def test_identity_of_the_default_url_matches_the_old_key() -> None:
    request = Request.chat("x")
    for name in ENGINES:
        engine = instructgen.engine(name, api_key=TEST_KEY, base_url=DEFAULT_URLS[name])
        assert Dispatcher(engine).key(request) == old_key(engine, request)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("http://LOCALHOST:8000/v1/", "http://localhost:8000/v1"),
        ("http://localhost/v1", "http://localhost:80/v1"),
        ("https://example.com//v1//", "https://example.com:443/v1"),
        ("http://user:secret@localhost:8000/v1?api-key=sk-1#x", "http://localhost:8000/v1"),
    ],
)
def test_endpoints_are_normalised(a: str, b: str) -> None:
    ea = instructgen.engine("openai", api_key=TEST_KEY, base_url=a)
    eb = instructgen.engine("openai", api_key=TEST_KEY, base_url=b)
    assert ea.identity() == eb.identity()
    assert "endpoint" in ea.identity()


def test_endpoint_never_holds_credentials() -> None:
    url = "http://alice:sk-SECRET-1@127.0.0.1:9000/v1?key=sk-SECRET-2"
    engine = instructgen.engine("openai", api_key="sk-SECRET-3", base_url=url)
    text = json.dumps(engine.identity())
    assert "SECRET" not in text and "alice" not in text
    assert engine.identity()["endpoint"] == "http://127.0.0.1:9000/v1"


def test_other_ports_and_paths_are_other_endpoints() -> None:
    def ident(url: str) -> Any:
        return instructgen.engine("openai", api_key=TEST_KEY, base_url=url).identity()

    assert ident("http://127.0.0.1:8000/v1") != ident("http://127.0.0.1:8001/v1")
    assert ident("http://127.0.0.1:8000/v1") != ident("http://127.0.0.1:8000/v2")
    assert ident("http://127.0.0.1:8000/v1") != ident("https://127.0.0.1:8000/v1")


@pytest.mark.parametrize(
    "url", ["not a url", "localhost:8000", "ftp://example.com/v1", "http://", "http://h:x/v1"]
)
def test_a_base_url_that_is_not_a_url_is_refused_up_front(url: str) -> None:
    with pytest.raises(ConfigError, match="is not a URL") as err:
        instructgen.engine("openai", api_key=TEST_KEY, base_url=url)
    assert err.value.exit_code == 2

"""The built-in engines: the real SDKs against a local server speaking each wire format."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import ENGINES, TEST_KEY, make_engine
from wire_server import WireServer

import instructgen
from instructgen import (
    AuthenticationError,
    BadRequestError,
    MissingKeyError,
    Request,
    TransientEngineError,
)
from instructgen.cache import Cache
from instructgen.dispatch import DispatchConfig, Dispatcher


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


# The OpenAI engines post through the SDK's aiohttp client by default; "openai@httpx" runs the
# same checks through the SDK's default httpx client and its post() (INSTRUCTGEN_OPENAI_HTTPX=1).
TRANSPORTS = [*ENGINES, "openai@httpx"]


async def complete_once(dispatcher: Dispatcher, request: Request) -> Any:
    """One request, then the engine's client is closed (as the CLI does)."""
    async with dispatcher as d:
        return await d.complete(request)


async def complete_all(dispatcher: Dispatcher, requests: list[Request]) -> Any:
    async with dispatcher as d:
        return await d.complete_many(requests)


def engine_for(wire_server: WireServer, name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    if name.endswith("@httpx"):
        monkeypatch.setenv("INSTRUCTGEN_OPENAI_HTTPX", "1")
        name = name.split("@")[0]
    return make_engine(wire_server, name)


@pytest.mark.parametrize("name", TRANSPORTS)
def test_engine_round_trip(
    wire_server: WireServer, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wire_server.responder = lambda call: f"{call.provider}/{call.kind}: {call.prompt}"
    engine = engine_for(wire_server, name, monkeypatch)
    name = name.split("@")[0]

    async def go():  # type: ignore[no-untyped-def]
        try:
            return await engine.acomplete(
                Request.chat("Name three colours.", max_tokens=20, stop=("\n\n",), temperature=0)
            )
        finally:
            await engine.aclose()

    c = run(go())
    kind = "completion" if name == "openai-completions" else "chat"
    provider = {"openai-completions": "openai"}.get(name, name)
    assert c.text == f"{provider}/{kind}: Name three colours."
    assert c.finish_reasons == ("stop",)
    assert c.usage.prompt_tokens == 3 and c.usage.completion_tokens > 0
    call = wire_server.calls[0]
    assert call.api_key == TEST_KEY
    assert call.body["model"] == engine.model
    assert call.body.get("max_tokens") == 20
    stop = call.body.get("stop") or call.body.get("stop_sequences")
    assert stop == ["\n\n"]


@pytest.mark.parametrize(
    ("seed_name", "engine_name", "model"),
    [
        ("ChatGPT", "openai", "gpt-4o-mini"),
        ("Davinci", "openai-completions", "gpt-3.5-turbo-instruct"),
        ("Medium", "cohere", "command-r-08-2024"),
        ("J2Grande", "ai21", "jamba-mini"),
    ],
)
def test_seed_classes(
    seed_name: str, engine_name: str, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import instructgen.engines as engines

    cls = getattr(engines, seed_name)
    e = cls("key-123")
    assert e.name == engine_name and e.model == model
    assert cls("key-123", model="other").model == "other"
    assert type(instructgen.engine(engine_name, api_key="k")) is cls
    with pytest.raises(MissingKeyError) as err:
        cls()
    assert all(v in str(err.value) for v in cls.key_env_vars)
    monkeypatch.setenv(cls.key_env_vars[-1], "from-env")
    assert cls().api_key == "from-env"


def test_openai_needs_no_key_for_a_local_server(
    wire_server: WireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", wire_server.openai_base_url)
    from instructgen.engines import ChatGPT  # type: ignore[attr-defined]

    e = ChatGPT()
    assert e.base_url == wire_server.openai_base_url


def test_alias_with_model_spec() -> None:
    e = instructgen.engine("davinci:my-instruct-model", api_key="k")
    assert e.name == "openai-completions" and e.model == "my-instruct-model"


@pytest.mark.parametrize("name", TRANSPORTS)
@pytest.mark.parametrize("fault", ["429", "500", "reset", "malformed"])
def test_transient_faults_are_retried(
    wire_server: WireServer, name: str, fault: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wire_server.inject(fault, times=2, retry_after=0.05 if fault == "429" else None)
    engine = engine_for(wire_server, name, monkeypatch)

    async def go():  # type: ignore[no-untyped-def]
        async with Dispatcher(engine, config=DispatchConfig(backoff_base=0.01)) as d:
            c = await d.complete(Request.chat("hello"))
            return c, d.stats

    c, stats = run(go())
    assert c.text
    assert stats.retried == 2 and stats.sent == 3 and stats.failed == 0
    assert len(wire_server.calls) == 3


@pytest.mark.parametrize("name", ENGINES)
def test_truncated_output_surfaces_as_length(wire_server: WireServer, name: str) -> None:
    wire_server.inject("truncate")
    engine = make_engine(wire_server, name)
    c = run(complete_once(Dispatcher(engine), Request.chat("hello")))
    assert c.finish_reasons == ("length",)


@pytest.mark.parametrize("name", TRANSPORTS)
@pytest.mark.parametrize(
    ("fault", "error"), [("401", AuthenticationError), ("400", BadRequestError)]
)
def test_permanent_errors_fail_fast(
    wire_server: WireServer,
    name: str,
    fault: str,
    error: type[Exception],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wire_server.inject(fault, times=10)
    engine = engine_for(wire_server, name, monkeypatch)
    with pytest.raises(error) as err:
        run(
            complete_once(
                Dispatcher(engine, config=DispatchConfig(backoff_base=0.01)),
                Request.chat("hello"),
            )
        )
    assert len(wire_server.calls) == 1  # no retry storm
    assert TEST_KEY not in str(err.value) and TEST_KEY not in repr(err.value)


def test_gives_up_after_max_attempts(wire_server: WireServer) -> None:
    wire_server.inject("500", times=100)
    engine = make_engine(wire_server, "openai")
    cfg = DispatchConfig(backoff_base=0.001, max_attempts=3)
    with pytest.raises(TransientEngineError, match="gave up after 3 attempts"):
        run(complete_once(Dispatcher(engine, config=cfg), Request.chat("x")))
    assert len(wire_server.calls) == 3


def test_timeout_is_retried(wire_server: WireServer) -> None:
    wire_server.inject("hang", times=1, retry_after=2)
    engine = make_engine(wire_server, "openai")
    cfg = DispatchConfig(timeout=0.3, backoff_base=0.01)
    c = run(complete_once(Dispatcher(engine, config=cfg), Request.chat("x")))
    assert c.text and len(wire_server.calls) == 2


def test_retry_after_is_honoured(wire_server: WireServer) -> None:
    import time

    wire_server.inject("429", times=1, retry_after=0.6)
    engine = make_engine(wire_server, "cohere")
    start = time.monotonic()
    run(
        complete_once(
            Dispatcher(engine, config=DispatchConfig(backoff_base=0.001)), Request.chat("x")
        )
    )
    assert time.monotonic() - start >= 0.6


def test_cache_answers_reruns_and_holds_no_key(wire_server: WireServer, tmp_path: Path) -> None:
    requests = [Request.chat(f"question {i}") for i in range(30)]

    async def go():  # type: ignore[no-untyped-def]
        cache = Cache(tmp_path / "cache.sqlite3")
        async with Dispatcher(make_engine(wire_server, "openai"), cache=cache) as d:
            out = await d.complete_many(requests)
        cache.close()
        return out, d.stats

    first, s1 = run(go())
    second, s2 = run(go())
    assert [c.text for c in first] == [c.text for c in second]  # type: ignore[union-attr]
    assert (s1.sent, s2.sent, s2.cached) == (30, 0, 30)
    assert wire_server.paid_twice() == []
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert TEST_KEY.encode() not in raw


def test_max_cost_stops_before_the_budget(wire_server: WireServer, tmp_path: Path) -> None:
    from instructgen import BudgetExceededError
    from instructgen.engines import Price

    engine = make_engine(wire_server, "openai", prices={"gpt-4o-mini": Price(1000.0, 1000.0)})
    d = Dispatcher(engine, config=DispatchConfig(max_cost=0.5, concurrency=1))
    with pytest.raises(BudgetExceededError, match="rerun") as err:
        run(complete_all(d, [Request.chat(f"q{i}", max_tokens=100) for i in range(50)]))
    assert err.value.exit_code == 1
    assert d.stats.cost <= 0.5
    assert 0 < len(wire_server.calls) < 50


def test_rpm_limit_is_respected(wire_server: WireServer) -> None:
    import time

    engine = make_engine(wire_server, "openai")
    d = Dispatcher(engine, config=DispatchConfig(concurrency=32, rpm=600))  # 10 a second
    start = time.monotonic()
    run(complete_all(d, [Request.chat(f"q{i}") for i in range(21)]))
    assert time.monotonic() - start >= 1.8  # 10 burst-free per second after the first


def test_progress_events(wire_server: WireServer) -> None:
    events = []
    engine = make_engine(wire_server, "ai21")
    d = Dispatcher(engine, progress=events.append)
    run(d.complete_many([Request.chat(f"q{i}") for i in range(5)], stage="demo"))
    assert events[-1].done == 5 and events[-1].total == 5 and events[-1].stage == "demo"
    assert json.dumps(events[-1].to_dict())


@pytest.mark.parametrize(
    ("name", "suffixes"),
    [
        ("openai", ["", "/", "/v1", "/v1/"]),
        ("openai-completions", ["", "/v1"]),
        ("cohere", ["", "/", "/v1", "/v2/"]),
        ("ai21", ["", "/studio/v1"]),
    ],
)
def test_base_url_with_or_without_the_version_path(
    wire_server: WireServer, name: str, suffixes: list[str]
) -> None:
    """Each engine reaches the server from its host alone and from the host with the version
    path its provider's documentation shows; both give the same cache key (endpoint)."""
    wire_server.responder = lambda call: "ok"
    endpoints = set()
    for suffix in suffixes:
        engine = instructgen.engine(name, api_key=TEST_KEY, base_url=wire_server.url + suffix)

        async def go(engine: Any = engine) -> Any:
            try:
                return await engine.acomplete(Request.chat("Say ok.", max_tokens=5))
            finally:
                await engine.aclose()

        assert run(go()).text == "ok", suffix
        endpoints.add(engine.endpoint())
    assert len(endpoints) == 1
    assert len(wire_server.calls) == len(suffixes)


def test_a_base_url_with_another_path_is_kept(wire_server: WireServer) -> None:
    """A path that is not a bare host (a proxy's prefix) is left as given."""
    engine = instructgen.engine("openai", api_key=TEST_KEY, base_url="http://proxy:8080/openai/v1")
    assert engine.base_url == "http://proxy:8080/openai/v1"
    engine = instructgen.engine("openai", api_key=TEST_KEY, base_url="http://localhost:11434")
    assert engine.base_url == "http://localhost:11434/v1"
    engine = instructgen.engine("cohere", api_key=TEST_KEY, base_url="https://api.cohere.com/v1")
    assert engine.base_url == "https://api.cohere.com"

"""The LiteLLM engine against the repository's local wire server: LiteLLM's real OpenAI and
Anthropic code paths on the wire (``/v1/chat/completions``, ``/v1/messages``), errors mapped to
instructgen's typed errors and retried by the dispatcher, prices from LiteLLM's cost map, and the
CLI run a user types."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO / "tests"))

from click.testing import CliRunner  # noqa: E402
from selfinstruct_responder import respond  # noqa: E402
from wire_server import WireServer  # noqa: E402

from instructgen import InstructionDataset, plugins  # noqa: E402
from instructgen.cli import cli  # noqa: E402
from instructgen.dispatch import DispatchConfig, Dispatcher  # noqa: E402
from instructgen.engines import Engine, Request, create_engine  # noqa: E402
from instructgen.errors import (  # noqa: E402
    AuthenticationError,
    RateLimitError,
    TransientEngineError,
)

KEY = "sk-ant-test-DO-NOT-LEAK-0123456789"
ROUTES = {
    # route: (model, how the test reaches the server)
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-haiku-4-5",
}


@pytest.fixture
def server() -> Iterator[WireServer]:
    with WireServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _no_provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


def engine_for(server: WireServer, route: str, **kw: Any) -> Engine:
    base = server.openai_base_url if route == "openai" else server.anthropic_base_url
    return create_engine("litellm", api_key=KEY, model=ROUTES[route], base_url=base, **kw)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def complete(engine: Engine, request: Request) -> Any:
    """One call, then the engine closed in the same event loop, as the dispatcher does."""

    async def go() -> Any:
        try:
            return await engine.acomplete(request)
        finally:
            await engine.aclose()

    return run(go())


FULL = Request.chat(
    "Name three rivers.",
    system="Answer briefly.",
    max_tokens=40,
    temperature=0.3,
    top_p=0.8,
    stop=("\n\n", "END"),
    n=2,
    seed=7,
    presence_penalty=1.5,
    frequency_penalty=0.5,
    extra={"user": "run-42"},
)


def test_registered_through_the_entry_point() -> None:
    info = {p.name: p for p in plugins.plugin_infos()}["litellm"]
    assert info.distribution == "instructgen-litellm" and info.error is None
    assert plugins.engines().by_plugin("litellm") == ["litellm"]


def test_openai_route_sends_every_request_field(server: WireServer) -> None:
    c = complete(engine_for(server, "openai"), FULL)
    (call,) = server.calls
    assert call.path == "/v1/chat/completions" and call.api_key == KEY
    body = call.body
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Name three rivers."},
    ]
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (40, 0.3, 0.8)
    assert body["stop"] == ["\n\n", "END"] and body["n"] == 2 and body["seed"] == 7
    assert (body["presence_penalty"], body["frequency_penalty"]) == (1.5, 0.5)
    assert body["user"] == "run-42"  # Request.extra passes through
    assert "num_retries" not in body and "max_retries" not in body
    assert len(c.texts) == 2 and c.finish_reasons == ("stop", "stop")
    assert c.usage.prompt_tokens > 0 and c.usage.completion_tokens > 0


def test_a_completion_prompt_is_sent_as_a_user_message(server: WireServer) -> None:
    complete(engine_for(server, "openai"), Request(prompt="Continue: 1. 2.", max_tokens=5))
    assert server.calls[0].body["messages"] == [{"role": "user", "content": "Continue: 1. 2."}]


def test_anthropic_messages_route(server: WireServer) -> None:
    c = complete(engine_for(server, "anthropic"), FULL)
    # Anthropic has no n: two samples are two calls; seed and penalties are not sent.
    assert len(server.calls) == 2 and len(c.texts) == 2
    call = server.calls[0]
    assert call.path == "/v1/messages" and call.api_key == KEY  # x-api-key header
    body = call.body
    assert body["model"] == "claude-haiku-4-5"
    assert body["system"] in ("Answer briefly.", [{"type": "text", "text": "Answer briefly."}])
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert "Name three rivers." in json.dumps(body["messages"])
    assert body["max_tokens"] == 40 and body["stop_sequences"] == ["\n\n", "END"]
    assert (body["temperature"], body["top_p"]) == (0.3, 0.8)
    assert not {"n", "seed", "presence_penalty", "frequency_penalty"} & set(body)
    assert c.finish_reasons == ("stop", "stop")
    assert c.usage.prompt_tokens > 0 and c.usage.completion_tokens > 0


def test_anthropic_max_tokens_stop_is_a_length_finish(server: WireServer) -> None:
    server.inject("truncate")
    c = complete(engine_for(server, "anthropic"), Request.chat("x"))
    assert c.finish_reasons == ("length",)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("fault", "error"),
    [("429", RateLimitError), ("500", TransientEngineError), ("401", AuthenticationError)],
)
def test_errors_are_typed_and_litellm_does_not_retry(
    server: WireServer, route: str, fault: str, error: type[Exception]
) -> None:
    server.inject(fault, times=1, retry_after=1.5 if fault == "429" else None)
    with pytest.raises(error) as info:
        complete(engine_for(server, route), Request.chat(f"{route} {fault}"))
    assert len(server.calls) == 1  # LiteLLM's and the provider SDK's retries are off
    assert getattr(info.value, "status", None) == int(fault)
    if fault == "429":
        assert info.value.retry_after == 1.5  # type: ignore[attr-defined]
    assert KEY not in str(info.value) and KEY not in repr(info.value)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("fault", ["429", "500"])
def test_the_dispatcher_retries_once_and_succeeds(
    server: WireServer, route: str, fault: str
) -> None:
    server.inject(fault, times=1, retry_after=0.2 if fault == "429" else None)

    async def go() -> Any:
        cfg = DispatchConfig(backoff_base=0.01)
        async with Dispatcher(engine_for(server, route), config=cfg) as d:
            c = await d.complete(Request.chat(f"retry {route} {fault}"))
            return c, d.stats

    c, stats = run(go())
    assert c.text and stats.retried == 1 and stats.sent == 2 and stats.failed == 0
    assert len(server.calls) == 2


@pytest.mark.parametrize("route", ROUTES)
def test_the_dispatcher_does_not_retry_a_bad_key(server: WireServer, route: str) -> None:
    server.inject("401", times=1)

    async def go() -> None:
        async with Dispatcher(engine_for(server, route)) as d:
            await d.complete(Request.chat("401"))

    with pytest.raises(AuthenticationError):
        run(go())
    assert len(server.calls) == 1


def test_prices_come_from_litellm_cost_map() -> None:
    import litellm

    for route, model in ROUTES.items():
        engine = create_engine("litellm", model=model, base_url="http://127.0.0.1:9")
        price = engine.price()
        assert price is not None, route
        info = litellm.model_cost[model.split("/", 1)[1]]
        assert price.input == pytest.approx(info["input_cost_per_token"] * 1e6)
        assert price.output == pytest.approx(info["output_cost_per_token"] * 1e6)
        # the same figure LiteLLM's own calculator gives
        cost_in, cost_out = litellm.cost_per_token(
            model=model, prompt_tokens=1000, completion_tokens=500
        )
        from instructgen.engines import Usage

        assert price.cost(Usage(1000, 500)) == pytest.approx(cost_in + cost_out)
    unknown = create_engine("litellm", model="ollama/no-such-model-xyz")
    assert unknown.price() is None


def test_identity_has_model_and_server_never_the_key(server: WireServer) -> None:
    engine = engine_for(server, "anthropic")
    ident = engine.identity()
    assert ident == {
        "engine": "litellm",
        "model": "anthropic/claude-haiku-4-5",
        "kind": "chat",
        "api_base": server.anthropic_base_url,
    }
    assert KEY not in json.dumps(ident) and KEY not in repr(engine)
    other = create_engine("litellm", model=ROUTES["anthropic"], base_url="http://127.0.0.1:9")
    assert other.identity() != ident  # another server: another cache entry


def test_cli_generate_with_litellm_on_an_openai_compatible_server(
    server: WireServer, tmp_path: Path
) -> None:
    server.responder = respond
    tasks = tmp_path / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    out = tmp_path / "out"
    args = ["generate", str(tasks), "--engine", "litellm", "--model", "openai/gpt-4o-mini"]
    args += ["--base-url", server.openai_base_url, "-n", "5", "--out", str(out), "--json"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["examples"] == 5
    assert len(InstructionDataset.load(out)) == 5
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["engine"] == "litellm" and run_json["model"] == "openai/gpt-4o-mini"
    assert {c.path for c in server.calls} == {"/v1/chat/completions"}
    assert run_json["requests"]["cost_usd"] > 0  # priced from LiteLLM's cost map
    # a rerun is answered from the cache: nothing more is sent
    sent = len(server.calls)
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.stderr
    assert len(server.calls) == sent


def test_engine_options_reach_litellm_and_the_cache_key(server: WireServer) -> None:
    engine = engine_for(server, "openai", user="team-a", litellm_params={"metadata": {"run": "x"}})
    complete(engine, Request.chat("hello"))
    body = server.calls[0].body
    assert body["user"] == "team-a"
    assert engine.identity()["options"] == {
        "litellm_params": {"metadata": {"run": "x"}},
        "user": "team-a",
    }
    from instructgen.errors import ConfigError

    with pytest.raises(ConfigError, match="has no option 'temperature'"):
        engine_for(server, "openai", temperature=0.1)


def test_a_model_litellm_cannot_route_is_a_usage_error(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    args = ["generate", str(tasks), "--engine", "litellm", "--model", "nosuchprovider/some-model"]
    r = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "o")])
    assert r.exit_code == 2, r.output
    assert "LiteLLM cannot route model 'nosuchprovider/some-model'" in r.stderr
    assert "Traceback" not in r.stderr


def test_openai_models_are_counted_with_their_tokenizer() -> None:
    from instructgen_litellm import LiteLLMEngine

    from instructgen import tiktoken_counter

    text = "Come up with a series of tasks:\n1. Name three rivers in Europe."
    ours = LiteLLMEngine.token_counter("openai/gpt-4o-mini")
    assert ours is not None
    reference = tiktoken_counter("gpt-4o-mini")
    assert reference is not None and ours(text) == reference(text)
    assert LiteLLMEngine.token_counter() is not None  # the default model is OpenAI's
    assert LiteLLMEngine.token_counter("anthropic/claude-haiku-4-5") is None
    assert LiteLLMEngine.token_counter("ollama/llama3.1") is None
    assert LiteLLMEngine.token_counter("openai/my-local-model") is None  # tiktoken knows none


def test_the_dry_run_counts_prompts_with_the_tokenizer(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    args = ["generate", str(tasks), "--engine", "litellm", "--dry-run", "--json"]
    d = json.loads(CliRunner().invoke(cli, [*args, "--model", "openai/gpt-4o-mini"]).output)
    assert d["prompt_tokens_counted"] == "with the model's tokenizer"
    other = json.loads(CliRunner().invoke(cli, [*args, "--model", "ollama/llama3.1"]).output)
    assert other["prompt_tokens_counted"] == "as 4 characters a token"


@pytest.mark.parametrize("kind", ["endless", "hugejson"])
@pytest.mark.parametrize("route", ["openai", "anthropic"])
def test_an_oversized_reply_stops_at_the_limit_and_is_not_retried(
    server: WireServer, route: str, kind: str
) -> None:
    """LiteLLM is given a client that stops reading at the reply-size limit: an endless body
    or megabytes of valid JSON fail once with ReplyTooLargeError, nothing is cached."""
    from instructgen import ReplyTooLargeError
    from instructgen.cache import Cache

    server.huge_bytes = 4 * 1024 * 1024
    server.inject(kind, times=100)
    limit = 128 * 1024

    async def go(cache: Cache) -> Any:
        cfg = DispatchConfig(max_reply_bytes=limit, timeout=60, backoff_base=0.01)
        async with Dispatcher(engine_for(server, route), config=cfg, cache=cache) as d:
            return (await d.complete_many([Request.chat("Tell me everything.")]))[0]

    with tempfile.TemporaryDirectory() as folder, Cache(Path(folder) / "c.sqlite3") as cache:
        result = run(go(cache))
        assert isinstance(result, ReplyTooLargeError), result
        assert result.partial  # stopped while reading, not refused after reading it whole
        assert "131,072 bytes" in str(result) and "--max-reply-bytes" in str(result)
        assert KEY not in str(result)
        assert len(server.calls) == 1 and len(cache) == 0
    deadline = time.monotonic() + 30
    while kind not in server.body_bytes_sent and time.monotonic() < deadline:
        time.sleep(0.01)
    if kind == "endless":  # the client hung up near the limit (plus what sockets buffer)
        assert server.body_bytes_sent[kind] < limit + 24 * 1024 * 1024

"""The template engine against a local hello-api server, through instructgen's dispatcher."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from hello_server import HelloServer

import instructgen
from instructgen import AuthenticationError, Request
from instructgen.dispatch import DispatchConfig, Dispatcher


@pytest.fixture
def server() -> Iterator[HelloServer]:
    s = HelloServer()
    yield s
    s.stop()


def test_registered_under_its_name_and_alias() -> None:
    from instructgen.engines import Hello  # type: ignore[attr-defined]

    assert type(instructgen.engine("hello", api_key="k")) is Hello


def test_completes_through_the_dispatcher(server: HelloServer) -> None:
    engine = instructgen.engine("hello-api", api_key="good-key", base_url=server.url)
    c = asyncio.run(Dispatcher(engine).complete(Request.chat("Say hi", max_tokens=5)))
    assert c.text == "hello, you said 6 chars"
    assert c.usage.prompt_tokens == 2
    assert server.bodies[0]["max_tokens"] == 5


def test_429_and_500_are_retried(server: HelloServer) -> None:
    server.faults = [(429, {"Retry-After": "0.05"}), (500, {})]
    engine = instructgen.engine("hello-api", api_key="good-key", base_url=server.url)
    d = Dispatcher(engine, config=DispatchConfig(backoff_base=0.01))
    assert asyncio.run(d.complete(Request.chat("x"))).text
    assert d.stats.retried == 2 and len(server.bodies) == 3


def test_bad_key_fails_at_once(server: HelloServer) -> None:
    engine = instructgen.engine("hello-api", api_key="wrong", base_url=server.url)
    with pytest.raises(AuthenticationError):
        asyncio.run(Dispatcher(engine).complete(Request.chat("x")))
    assert len(server.bodies) == 1


def test_every_request_field_reaches_the_wire(server: HelloServer) -> None:
    engine = instructgen.engine("hello-api", api_key="good-key", base_url=server.url)
    request = Request.chat(
        "Name a colour.",
        max_tokens=7,
        temperature=0.7,
        top_p=0.5,
        stop=("\n\n",),
        n=3,
        seed=11,
        presence_penalty=2.0,
        frequency_penalty=0.5,
        extra={"logit_bias": {"50256": -100}},
    )
    c = asyncio.run(Dispatcher(engine).complete(request))
    assert len(c.texts) == 3 and len(server.bodies) == 3
    body = server.bodies[0]
    assert {k: body[k] for k in ("max_tokens", "temperature", "top_p", "stop", "seed")} == {
        "max_tokens": 7,
        "temperature": 0.7,
        "top_p": 0.5,
        "stop": ["\n\n"],
        "seed": 11,
    }
    assert body["presence_penalty"] == 2.0 and body["frequency_penalty"] == 0.5
    assert body["logit_bias"] == {"50256": -100}

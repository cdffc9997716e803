"""429s that tell an overloaded server from a spent quota, over the real OpenAI SDK: scattered
429s delay only the requests they hit, a true per-minute limit is reached with few 429s."""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import make_engine
from wire_server import WireServer

from instructgen import Request
from instructgen.dispatch import DispatchConfig, Dispatcher, _RateLimitSignal
from instructgen.engine_errors import from_status
from instructgen.engines import Completion
from instructgen.errors import RateLimitError


def run(server: WireServer, n: int, concurrency: int, tag: str) -> tuple[float, Dispatcher]:
    engine = make_engine(server, "openai")
    reqs = [Request.chat(f"{tag} {i}", max_tokens=20) for i in range(n)]

    async def go() -> tuple[float, Dispatcher]:
        async with Dispatcher(engine, config=DispatchConfig(concurrency=concurrency)) as d:
            await d.complete(Request.chat(f"{tag} warm-up"))
            start = time.monotonic()
            out = await d.complete_many(reqs)
            elapsed = time.monotonic() - start
        assert all(isinstance(c, Completion) for c in out)
        return elapsed, d

    return asyncio.run(go())


def test_random_429s_keep_most_of_the_throughput(wire_server: WireServer) -> None:
    """20 % of requests answered 429 + Retry-After at random: was 40x slower (each 429 paused
    everyone and halved the concurrency; the server never saw more than 6 in flight)."""
    wire_server.latency = 0.05
    clean, _ = run(wire_server, 600, 32, "clean")
    wire_server.overload(0.2, retry_after=0.2)
    wire_server.max_in_flight = 0
    overloaded, d = run(wire_server, 600, 32, "overloaded")
    assert 80 <= wire_server.answered_429 <= 200
    assert clean / overloaded >= 0.35, (clean, overloaded)
    assert wire_server.max_in_flight >= 24  # the concurrency never collapsed
    assert d.stats.failed == 0


@pytest.mark.parametrize("headers", [True, False])
def test_a_true_limit_is_reached_with_few_429s(wire_server: WireServer, headers: bool) -> None:
    """1,800 requests a minute (30 a second) answered after 150 ms (4.5 in flight), 32
    allowed in flight: the run converges on the limit. With x-ratelimit-remaining-requests: 0
    on the 429s, few requests are refused; without, the share of 429s in a window shows the
    limit (and more are refused on the way)."""
    wire_server.latency = 0.15
    wire_server.limit(1800, headers=headers)
    elapsed, d = run(wire_server, 200, 32, "limited")
    answered = 201  # with the warm-up
    refused = wire_server.answered_429
    bound = 30 + 30 * elapsed  # a second's worth of burst, then 30 a second
    assert d.stats.completed == answered and d.stats.failed == 0
    assert 200 / (bound - 1) >= 0.8, elapsed  # of what the limit let through
    share = refused / (refused + answered)
    assert share <= (0.2 if headers else 0.6), (refused, answered)


def test_a_429_about_billing_is_not_retried(wire_server: WireServer) -> None:
    spent = from_status(429, "You exceeded your current quota, please check your plan")
    assert isinstance(spent, RateLimitError) and not spent.retryable
    assert "billing" in str(spent)


def test_a_spent_quota_is_read_from_the_headers() -> None:
    spent = from_status(429, "x", headers={"x-ratelimit-remaining-requests": "0"})
    busy = from_status(
        429, "x", headers={"x-ratelimit-remaining-requests": "12", "Retry-After": "1"}
    )
    tokens = from_status(429, "x", headers={"X-RateLimit-Remaining-Tokens": "0"})
    assert isinstance(spent, RateLimitError) and spent.exhausted
    assert isinstance(busy, RateLimitError) and not busy.exhausted
    assert isinstance(tokens, RateLimitError) and tokens.exhausted


def test_the_share_of_429s_in_a_window_tells_a_limit_from_noise() -> None:
    import random

    rng = random.Random(0)
    plain = RateLimitError("busy", status=429)
    noise = _RateLimitSignal()
    triggered = 0
    for _ in range(5000):  # 20 % of attempts refused, at random
        if rng.random() < 0.2:
            triggered += noise.real_limit(plain)
        else:
            noise.record(False)
    assert triggered <= 6  # about 3 in 5,000 on average
    limit = _RateLimitSignal()
    outcomes = [limit.real_limit(plain) if i % 2 else limit.record(False) for i in range(40)]
    assert any(outcomes)  # half the attempts refused: a limit
    spent = RateLimitError("spent", status=429)
    spent.exhausted = True
    assert _RateLimitSignal().real_limit(spent)


def test_429s_have_their_own_bounded_budget() -> None:
    """A server that answers nothing but 429: the request gives up after 4 x max_attempts
    attempts (or rate_limit_patience), not after max_attempts, and not never."""
    from instructgen.engines import Engine

    class AlwaysBusy(Engine):
        name = "busy"
        needs_key = False
        calls = 0

        async def acomplete(self, request: Request) -> Completion:
            AlwaysBusy.calls += 1
            raise RateLimitError("busy", engine=self.name, status=429, retry_after=0.001)

    async def go(config: DispatchConfig) -> None:
        async with Dispatcher(AlwaysBusy(model="m"), config=config) as d:
            with pytest.raises(RateLimitError, match="gave up after"):
                await d.complete(Request.chat("x"))

    asyncio.run(go(DispatchConfig(max_attempts=2)))
    assert AlwaysBusy.calls == 8
    AlwaysBusy.calls = 0
    asyncio.run(go(DispatchConfig(max_attempts=1000, rate_limit_patience=0.2)))
    assert 5 < AlwaysBusy.calls < 1000

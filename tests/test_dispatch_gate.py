"""The dispatcher's concurrency gate with many queued requests: the cap holds, requests are let
in first come first served, a 429 pauses everyone and halves the cap, cancelled waiters give
their slot back, and the work per request does not grow with the queue."""

from __future__ import annotations

import asyncio
import time

import pytest

from instructgen import Request
from instructgen.dispatch import DispatchConfig, Dispatcher, _AdaptiveGate
from instructgen.engines import Completion, Engine
from instructgen.errors import RateLimitError


class CountingEngine(Engine):
    """Answers after ``delay`` seconds and records how many requests were in flight."""

    name = "counting"
    needs_key = False

    def __init__(self, delay: float = 0.001, fail_first: int = 0, exhausted: bool = True) -> None:
        super().__init__(model="m")
        self.delay = delay
        self.exhausted = exhausted  # the 429s say the quota is spent (x-ratelimit-remaining: 0)
        self.in_flight = 0
        self.max_in_flight = 0
        self.order: list[str] = []
        self.fail_first = fail_first
        self.failed: set[str] = set()
        self.started_at: list[tuple[float, int]] = []  # (when, requests in flight then)

    async def acomplete(self, request: Request) -> Completion:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.started_at.append((time.monotonic(), self.in_flight))
        text = request.messages[-1].content
        try:
            self.order.append(text)
            await asyncio.sleep(self.delay)
            if len(self.failed) < self.fail_first and text not in self.failed:
                self.failed.add(text)
                error = RateLimitError("slow down", engine=self.name, status=429, retry_after=0.3)
                error.exhausted = self.exhausted
                raise error
            return Completion(("ok",), ("stop",))
        finally:
            self.in_flight -= 1


def requests(n: int) -> list[Request]:
    return [Request.chat(f"r{i:05d}") for i in range(n)]


def test_cap_holds_and_order_is_first_come_first_served() -> None:
    engine = CountingEngine()

    async def main() -> None:
        async with Dispatcher(engine, config=DispatchConfig(concurrency=4)) as d:
            out = await d.complete_many(requests(400))
        assert all(isinstance(c, Completion) for c in out)

    asyncio.run(main())
    assert engine.max_in_flight == 4
    assert engine.order == [f"r{i:05d}" for i in range(400)]


def test_queue_length_does_not_change_the_cost_per_request() -> None:
    """With a notify-all gate every completion woke every queued request: 20x the queue meant
    about 20x the work per request. Counted in event-loop callbacks, not seconds."""

    def callbacks(n: int) -> float:
        engine = CountingEngine(delay=0)
        counter = {"n": 0}

        async def main() -> None:
            loop = asyncio.get_running_loop()
            original = loop.call_soon

            def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
                counter["n"] += 1
                return original(*args, **kwargs)

            loop.call_soon = counting  # type: ignore[method-assign]
            async with Dispatcher(engine, config=DispatchConfig(concurrency=8)) as d:
                await d.complete_many(requests(n))

        asyncio.run(main())
        return counter["n"] / n

    small, large = callbacks(200), callbacks(4000)
    assert large < small * 1.5, (small, large)


def test_a_429_without_a_spent_quota_delays_only_its_own_request() -> None:
    engine = CountingEngine(delay=0.01, fail_first=1, exhausted=False)
    config = DispatchConfig(concurrency=8, backoff_base=0.01)

    limits = []

    async def main() -> Dispatcher:
        async with Dispatcher(engine, config=config) as d:
            out = await d.complete_many(requests(40))
            limits.append(d._limits().limit)
        assert all(isinstance(c, Completion) for c in out)
        return d

    start = time.monotonic()
    d = asyncio.run(main())
    assert d.stats.retried == 1 and d.stats.completed == 40
    # Everyone else went on at full concurrency while the one request waited its 0.3 s.
    before_retry = [t for t, _ in engine.started_at if t - start < 0.25]
    assert len(before_retry) == 40
    assert engine.max_in_flight == 8 and limits == [8]


def test_rate_limit_pauses_everyone_and_halves_the_cap() -> None:
    """A 429 that says the quota is spent (x-ratelimit-remaining-*: 0)."""
    engine = CountingEngine(delay=0.01, fail_first=1)
    config = DispatchConfig(concurrency=8, backoff_base=0.01)

    async def main() -> Dispatcher:
        async with Dispatcher(engine, config=config) as d:
            out = await d.complete_many(requests(40))
        assert all(isinstance(c, Completion) for c in out)
        return d

    start = time.monotonic()
    d = asyncio.run(main())
    assert d.stats.retried == 1 and d.stats.completed == 40
    # The 429 came back about 10 ms after the start; nothing else started until its
    # Retry-After (0.3 s) had passed, and then at most half the cap was let in at first.
    late = [(t, n) for t, n in engine.started_at if t - start > 0.02]
    assert late and min(t for t, _ in late) - start >= 0.3
    assert max(n for _, n in late[:4]) <= 4
    assert engine.max_in_flight <= 8


def test_cancelled_waiters_give_their_slots_back() -> None:
    async def main() -> None:
        gate = _AdaptiveGate(2)
        await gate.acquire()
        await gate.acquire()
        waiters = [asyncio.ensure_future(gate.acquire()) for _ in range(5)]
        await asyncio.sleep(0)
        for w in waiters[:4]:
            w.cancel()
        gate.release(False)  # frees a slot: the one live waiter gets it
        await asyncio.wait_for(waiters[4], 1)
        assert gate.in_flight == 2
        gate.release(False)
        gate.release(False)
        assert gate.in_flight == 0
        await asyncio.wait_for(gate.acquire(), 1)  # nothing leaked: a slot is free
        assert gate.in_flight == 1

    asyncio.run(main())


@pytest.mark.parametrize("concurrency", [1, 3])
def test_interrupting_a_run_leaves_no_slot_taken(concurrency: int) -> None:
    engine = CountingEngine(delay=0.05)

    async def main() -> None:
        d = Dispatcher(engine, config=DispatchConfig(concurrency=concurrency))
        task = asyncio.ensure_future(d.complete_many(requests(50)))
        await asyncio.sleep(0.12)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate = d._limits()
        assert gate.in_flight == 0 and not gate._waiters
        await d.aclose()

    asyncio.run(main())

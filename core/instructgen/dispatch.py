"""The one place where requests run, for every engine.

``Dispatcher.complete(request)`` = cache lookup → budget check → concurrency and RPM/TPM limits →
the engine's single async call under a timeout → typed-error classification → bounded
exponential backoff with jitter (honouring ``Retry-After``) → commit to the cache → return.

On a 429 the dispatcher pauses every worker until the server's ``Retry-After`` has passed and
halves the number of requests it lets in flight (additive increase again after successes), so
a rate-limited run converges on what the provider allows instead of hammering it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from instructgen.cache import Cache, cache_key
from instructgen.engine_contract import Completion, Engine, Price, Request, Usage
from instructgen.engine_errors import from_exception, redact
from instructgen.errors import (
    AuthenticationError,
    BudgetExceededError,
    ConfigError,
    EngineError,
    RateLimitError,
    TransientEngineError,
)
from instructgen.money import format_usd
from instructgen.progress import ProgressCallback, ProgressEvent, emit

log = logging.getLogger("instructgen.dispatch")

__all__ = [
    "DispatchConfig",
    "Dispatcher",
    "Estimate",
    "RunStats",
    "estimate",
    "estimate_tokens",
    "gather_values",
]


@dataclass
class DispatchConfig:
    concurrency: int = 16
    rpm: float | None = None
    tpm: float | None = None
    timeout: float = 120.0
    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_max: float = 60.0
    max_cost: float | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {self.concurrency}")
        for name in ("rpm", "tpm", "max_cost"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be positive, got {value}")
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, got {self.max_attempts}")


@dataclass(frozen=True)
class Estimate:
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "max_completion_tokens": self.completion_tokens,
            "max_cost_usd": None if self.cost is None else round(self.cost, 6),
        }


@dataclass
class RunStats:
    sent: int = 0  # HTTP attempts made
    completed: int = 0  # requests answered by the engine in this run
    cached: int = 0  # requests answered from the cache
    failed: int = 0  # requests that gave up
    retried: int = 0  # attempts that were retried
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0
    started: float = field(default_factory=time.monotonic)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests_sent": self.sent,
            "requests_completed": self.completed,
            "requests_cached": self.cached,
            "requests_failed": self.failed,
            "retries": self.retried,
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
            "cost_usd": round(self.cost, 6),
            "elapsed_s": round(self.elapsed, 3),
            "errors": dict(self.errors),
        }


def estimate_tokens(text: str) -> int:
    """A conservative token estimate without a tokenizer: about 3 characters a token."""
    return max(1, (len(text) + 2) // 3)


def _prompt_tokens(request: Request) -> int:
    if request.prompt is not None:
        return estimate_tokens(request.prompt)
    return sum(estimate_tokens(m.content) + 4 for m in request.messages)


def estimate(requests: Iterable[Request], price: Price | None) -> Estimate:
    """Requests, prompt tokens, the most completion tokens and the worst-case cost (None
    without a ``price``) of sending ``requests``: the one estimate the dispatcher budgets with
    and both dry runs print."""
    count = prompt = completion = 0
    for r in requests:
        count += 1
        prompt += _prompt_tokens(r)
        completion += r.max_tokens * r.n
    cost = None if price is None else price.cost(Usage(prompt, completion))
    return Estimate(count, prompt, completion, cost)


T = TypeVar("T")


async def gather_values(
    calls: Iterable[Awaitable[T]],
    *,
    stop_on: tuple[type[EngineError], ...] = (AuthenticationError,),
) -> list[T | EngineError]:
    """Await ``calls`` concurrently and return their results in order, an ``EngineError`` as
    a value in place of the result it prevented: the one way pipelines send many requests and
    keep going past the ones that failed. Errors of a type in ``stop_on`` (by default a wrong
    key, which fails every request), any other exception (``BudgetExceededError``) and
    cancellation propagate; the other calls are then cancelled (what was answered is cached)."""

    async def one(call: Awaitable[T]) -> T | EngineError:
        try:
            return await call
        except EngineError as exc:
            if isinstance(exc, stop_on):
                raise
            return exc

    tasks = [asyncio.ensure_future(one(c)) for c in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _with_timeout(call: Awaitable[Completion], delay: float) -> Completion:
    if sys.version_info >= (3, 11):  # asyncio.timeout: no extra task per request
        async with asyncio.timeout(delay):
            return await call
    return await asyncio.wait_for(call, delay)  # pragma: no cover - Python 3.10


class TokenBucket:
    """``rate`` units a second with a burst of ``capacity``; ``acquire`` waits for credit."""

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate, self.capacity = rate, capacity
        self.level = capacity
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    async def acquire(self, amount: float) -> None:
        amount = min(amount, self.capacity)
        async with self._lock:
            while True:
                self._refill()
                if self.level >= amount:
                    self.level -= amount
                    return
                await asyncio.sleep((amount - self.level) / self.rate)

    def adjust(self, delta: float) -> None:
        """Give back (negative) or take (positive) credit once the real usage is known."""
        self._refill()
        self.level = min(self.capacity, self.level - delta)


class _AdaptiveGate:
    """Caps requests in flight; halves the cap on 429 and pauses until Retry-After has passed.

    Waiters queue in FIFO order and a finished request wakes exactly one of them, so the cost
    per request stays constant however many requests are queued (a condition variable's
    ``notify_all`` would wake every queued request on every completion).
    """

    def __init__(self, limit: int) -> None:
        self.max_limit = float(limit)
        self.limit = float(limit)
        self.in_flight = 0
        self.pause_until = 0.0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def _free(self) -> bool:
        return self.in_flight < max(1, int(self.limit))

    async def __aenter__(self) -> None:
        while True:
            wait = self.pause_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self._wake()  # slots freed while nobody could take them go to the queue first
            if self._free() and not self._waiters:
                self.in_flight += 1
                return
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
                if fut.done() and not fut.cancelled():
                    self._wake()  # we were handed a slot we will not use: pass it on
                raise
            # Woken with a slot reserved for us (in_flight already counts it) unless a pause
            # started meanwhile; then give the slot back and wait again.
            if self.pause_until > time.monotonic():
                self.in_flight -= 1
                self._wake()
                continue
            return

    def _wake(self) -> None:
        while self._waiters and self._free():
            fut = self._waiters.popleft()
            if not fut.done():
                self.in_flight += 1
                fut.set_result(None)

    async def __aexit__(self, *exc: object) -> None:
        self.in_flight -= 1
        self._wake()

    async def on_success(self) -> None:
        if self.limit < self.max_limit:
            self.limit = min(self.max_limit, self.limit + 1.0 / max(1.0, self.limit))
            self._wake()

    async def on_rate_limit(self, delay: float) -> None:
        self.limit = max(1.0, self.limit / 2)
        self.pause_until = max(self.pause_until, time.monotonic() + delay)


class Dispatcher:
    """Runs requests for one engine. Use as an async context manager (or call ``aclose``)."""

    def __init__(
        self,
        engine: Engine,
        *,
        config: DispatchConfig | None = None,
        cache: Cache | None = None,
        progress: ProgressCallback | None = None,
        stage: str = "requests",
    ) -> None:
        self.engine = engine
        self.config = config or DispatchConfig()
        self.cache = cache
        self.progress = progress
        self.stage = stage
        self.stats = RunStats()
        self.expected = 0
        self._identity = engine.identity()
        self._price = engine.price()
        self._gate: _AdaptiveGate | None = None
        self._rpm: TokenBucket | None = None
        self._tpm: TokenBucket | None = None
        self._reserved = 0.0
        self._last_emit = 0.0

    # -- lifecycle --------------------------------------------------------------------------

    def _limits(self) -> _AdaptiveGate:
        # Created lazily inside the running loop (asyncio primitives bind to it).
        if self._gate is None:
            cfg = self.config
            self._gate = _AdaptiveGate(cfg.concurrency)
            if cfg.rpm:
                self._rpm = TokenBucket(cfg.rpm / 60.0, 1.0)  # no burst: never above the cap
            if cfg.tpm:
                self._tpm = TokenBucket(cfg.tpm / 60.0, cfg.tpm / 60.0 * 10)
        return self._gate

    async def __aenter__(self) -> Dispatcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.engine.aclose()
        self._gate = None
        self._rpm = self._tpm = None

    # -- estimates ----------------------------------------------------------------------------

    def worst_case_cost(self, request: Request) -> float:
        if self._price is None:
            return 0.0
        return self._price.cost(Usage(_prompt_tokens(request), request.max_tokens * request.n))

    def key(self, request: Request, sample: int = 0) -> str:
        return cache_key(self._identity, request, sample)

    # -- running ------------------------------------------------------------------------------

    def expect(self, n: int) -> None:
        """Announce ``n`` more requests so progress can show a total and an ETA."""
        self.expected += n

    async def complete(self, request: Request, *, sample: int = 0) -> Completion:
        key = self.key(request, sample) if self.cache is not None else ""
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.stats.cached += 1
                self._emit()
                return hit
        gate = self._limits()
        cfg = self.config
        worst = self.worst_case_cost(request)
        est_tokens = _prompt_tokens(request) + request.max_tokens * request.n
        for attempt in range(1, cfg.max_attempts + 1):
            async with gate:
                if (
                    cfg.max_cost is not None
                    and self.stats.cost + self._reserved + worst > cfg.max_cost
                ):
                    raise BudgetExceededError(
                        f"stopping before the budget of {format_usd(cfg.max_cost)} is exceeded "
                        f"(spent {format_usd(self.stats.cost)}); finished requests are cached: "
                        "rerun the same command with a higher --max-cost to resume"
                    )
                if self._rpm is not None:
                    await self._rpm.acquire(1)
                if self._tpm is not None:
                    await self._tpm.acquire(est_tokens)
                self._reserved += worst
                self.stats.sent += 1
                try:
                    completion = await _with_timeout(self.engine.acomplete(request), cfg.timeout)
                except asyncio.TimeoutError:
                    error: EngineError = TransientEngineError(
                        f"no answer within {cfg.timeout:g} s", engine=self.engine.name, status=408
                    )
                except EngineError as exc:
                    error = exc
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # an engine plugin's unexpected failure
                    error = from_exception(exc, engine=self.engine.name)
                else:
                    if self.cache is not None:
                        self.cache.put(key, completion)  # committed before anyone uses it
                    self._account(completion, est_tokens)
                    await gate.on_success()
                    return completion
                finally:
                    self._reserved -= worst
            error = redact(error, self.engine.api_key)  # servers echo keys in messages
            self.stats.errors[type(error).__name__] += 1
            if not error.retryable or attempt == cfg.max_attempts:
                self.stats.failed += 1
                self._emit()
                if error.retryable:
                    raise type(error)(
                        f"{error} (gave up after {attempt} attempts)", status=error.status
                    ) from error
                raise error
            delay = self._backoff(attempt, error)
            if isinstance(error, RateLimitError):
                await gate.on_rate_limit(delay)
            self.stats.retried += 1
            log.info("retrying in %.2fs after %s", delay, error)
            self._emit()
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int, error: EngineError) -> float:
        cfg = self.config
        exp = min(cfg.backoff_max, cfg.backoff_base * 2 ** (attempt - 1))
        jittered = exp * (0.5 + random.random() / 2)
        if error.retry_after is not None:
            return min(cfg.backoff_max, max(error.retry_after, 0.0) + random.random() * 0.05)
        return jittered

    def _account(self, completion: Completion, est_tokens: int) -> None:
        s = self.stats
        s.completed += 1
        s.usage = s.usage + completion.usage
        if self._price is not None:
            s.cost += self._price.cost(completion.usage)
        if self._tpm is not None and completion.usage.total_tokens:
            self._tpm.adjust(completion.usage.total_tokens - est_tokens)
        self._emit()

    async def complete_many(
        self, requests: Sequence[Request], *, stage: str | None = None
    ) -> list[Completion | EngineError]:
        """Run requests concurrently; failures come back as ``EngineError`` values in place.

        ``BudgetExceededError`` and cancellation propagate (the other requests are cancelled;
        everything already answered is in the cache).
        """
        if stage:
            self.stage = stage
        self.expect(len(requests))
        return await gather_values((self.complete(r) for r in requests), stop_on=())

    # -- progress -----------------------------------------------------------------------------

    def _emit(self, force: bool = False) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        s = self.stats
        done = s.completed + s.cached + s.failed
        if not force and now - self._last_emit < 0.1 and done < self.expected:
            return
        self._last_emit = now
        eta = None
        if self.expected and s.completed and done < self.expected:
            eta = (self.expected - done) * s.elapsed / max(1, done)
        emit(
            self.progress,
            ProgressEvent(
                stage=self.stage,
                done=done,
                total=self.expected or None,
                failed=s.failed,
                retried=s.retried,
                cached=s.cached,
                prompt_tokens=s.usage.prompt_tokens,
                completion_tokens=s.usage.completion_tokens,
                cost=s.cost,
                eta_s=eta,
            ),
        )

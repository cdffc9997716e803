"""The one place where requests run, for every engine.

``Dispatcher.complete(request)`` = cache lookup → budget check → concurrency and RPM/TPM limits →
the engine's single async call under a timeout → typed-error classification → bounded
exponential backoff with jitter (honouring ``Retry-After``) → commit to the cache → return.

A 429 delays its own request by the server's ``Retry-After``. Only when 429s show a real limit
— ``x-ratelimit-remaining-*`` at 0, or 429s on at least 35 % of the recent attempts — does
the dispatcher pause every worker until ``Retry-After`` has passed and halve the number of
requests it lets in flight (additive increase again after successes), so a rate-limited run
converges on what the provider allows, while an overloaded server's scattered 429s cost only
the requests they hit.

Every reply is capped at ``max_reply_bytes`` (``reply_size.py``): the engine's HTTP client stops
reading at the limit and the request fails with ``ReplyTooLargeError``, which is not retried
(the same request would be paid again for a reply of the same size) and never cached.

A circuit breaker stops a run whose server is gone: when the server answered nothing for
``breaker_window`` seconds (one second when nothing has been answered yet, so a wrong port is
reported at once) while attempts failed to connect or timed out, every request raises
``ServerUnreachableError`` with the host, the reason and the counts; the cache keeps everything
answered. A failed attempt is evidence only if nothing was answered since it was sent: waiting
on a request the server holds while it answers others is not unreachability.

Failures are logged as one line per kind of error with counts, at most every
``warn_interval`` seconds, never one line per request.

A full disk halts the dispatcher (``diskspace``), and so does a damaged cache: no request is
sent after that, and the requests already in flight are not cancelled with the run: their
answers, paid for, are awaited when the dispatcher closes and stored (after a full disk, in the
room the response cache kept for them), so a rerun pays for nothing twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from instructgen.cache import Cache, cache_key
from instructgen.diskspace import on_disk_full
from instructgen.endpoints import host_of
from instructgen.engine_contract import Completion, Engine, Price, Request, Usage
from instructgen.engine_errors import from_exception, redact
from instructgen.errors import (
    AuthenticationError,
    BudgetExceededError,
    CacheDamagedError,
    ConfigError,
    ConnectionFailedError,
    DiskFullError,
    EngineError,
    RateLimitError,
    ServerUnreachableError,
)
from instructgen.hedging import HedgePolicy
from instructgen.limits import DEFAULT_REQUEST_TIMEOUT, with_timeout
from instructgen.money import format_usd
from instructgen.progress import ProgressCallback, ProgressEvent, emit
from instructgen.prompt_lists import PromptLists, SplitRequest
from instructgen.reply_size import DEFAULT_MAX_REPLY_BYTES, check_reply_size, reply_size_limit
from instructgen.tokens import estimate_tokens, prompt_tokens

log = logging.getLogger("instructgen.dispatch")

__all__ = [
    "DispatchConfig",
    "Dispatcher",
    "Estimate",
    "RunStats",
    "estimate",
    "estimate_tokens",
    "gather_values",
    "share_budget",
]


@dataclass
class DispatchConfig:
    concurrency: int = 16
    rpm: float | None = None
    tpm: float | None = None
    timeout: float = DEFAULT_REQUEST_TIMEOUT  # seconds for one answer: --timeout's one owner
    max_attempts: int = 6  # 429s have their own budget: 4 x this, within rate_limit_patience
    rate_limit_patience: float = 600.0  # seconds a request may spend waiting on 429s
    backoff_base: float = 0.5
    backoff_max: float = 60.0
    max_cost: float | None = None
    breaker_window: float | None = 10.0  # None: never stop on connection failures
    warn_interval: float = 5.0
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
    """The most bytes one reply may have (``--max-reply-bytes``): engines stop reading a
    larger one at the limit (``ReplyTooLargeError``, not retried, never cached), so memory
    stays bounded whatever a server sends. In batch mode it caps each line of a result file."""
    prompts_per_request: int = 20
    """The most prompts one request may carry on engines that take several
    (``Engine.max_prompts_per_request``; ``--prompts-per-request``): independent requests of
    the same parameters are sent together (``prompt_lists.py``). 1: one prompt a request."""
    prompt_list_delay: float = 0.005
    """Seconds a request waits for others to share its request (less when the list fills)."""
    batch: Any = None
    """A ``batching.BatchConfig``: requests marked batchable go through the engine's batch API
    (engines without one run them online)."""
    hedge: bool = True
    """Send a copy of a request that is taking far longer than its like, and use whichever
    answers first (``hedging.py``; ``--hedge-after off``: never)."""
    hedge_after: float | None = None
    """Seconds before that copy (``--hedge-after``); None: 3 x the 95th percentile of the
    latest answers of its kind, at least 5 s."""

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {self.concurrency}")
        for name in (
            "rpm",
            "tpm",
            "timeout",
            "max_cost",
            "breaker_window",
            "rate_limit_patience",
            "hedge_after",
        ):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be positive, got {value}")
        if self.max_reply_bytes < 1:
            raise ConfigError(f"max_reply_bytes must be at least 1, got {self.max_reply_bytes}")
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.prompts_per_request < 1:
            raise ConfigError(
                f"prompts_per_request must be at least 1, got {self.prompts_per_request}"
            )
        if self.prompt_list_delay < 0:
            raise ConfigError(f"prompt_list_delay must be >= 0, got {self.prompt_list_delay}")
        if self.batch is True or self.batch is False:
            from instructgen.batching import BatchConfig

            self.batch = BatchConfig() if self.batch else None


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
    sent: int = 0  # HTTP attempts made (wire requests)
    prompts_sent: int = 0  # prompts those attempts carried (several a request with lists)
    list_requests: int = 0  # answered requests that carried more than one prompt
    completed: int = 0  # requests answered by the engine in this run
    cached: int = 0  # requests answered from the cache
    failed: int = 0  # requests that gave up
    retried: int = 0  # attempts that were retried
    hedged: int = 0  # copies of late requests (``hedging.py``), not counted in ``sent``
    hedges_first: int = 0  # copies that answered before their original
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0
    started: float = field(default_factory=time.monotonic)
    errors: Counter[str] = field(default_factory=Counter)
    batch: Any = None  # batching.BatchStats in batch mode

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests_sent": self.sent,
            "prompts_sent": self.prompts_sent,
            "requests_with_several_prompts": self.list_requests,
            "requests_completed": self.completed,
            "requests_cached": self.cached,
            "requests_failed": self.failed,
            "retries": self.retried,
            "hedges_sent": self.hedged,
            "hedges_answered_first": self.hedges_first,
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
            "cost_usd": round(self.cost, 6),
            "elapsed_s": round(self.elapsed, 3),
            "errors": dict(self.errors),
            **({"batch": self.batch.to_dict()} if self.batch is not None else {}),
        }


def estimate(requests: Iterable[Request], price: Price | None) -> Estimate:
    """Requests, prompt tokens, the most completion tokens and the worst-case cost (None
    without a ``price``) of sending ``requests``: the one estimate the dispatcher budgets with
    and both dry runs print."""
    count = prompt = completion = 0
    for r in requests:
        count += 1
        prompt += prompt_tokens(r)
        completion += r.max_tokens * r.n
    cost = None if price is None else price.cost(Usage(prompt, completion))
    return Estimate(count, prompt, completion, cost)


T = TypeVar("T")
R = TypeVar("R")


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

    def available(self) -> float:
        """The credit there is now (nothing while a request waits for credit)."""
        if self._lock.locked():
            return 0.0
        self._refill()
        return self.level

    def adjust(self, delta: float) -> None:
        """Give back (negative) or take (positive) credit once the real usage is known."""
        self._refill()
        self.level = min(self.capacity, self.level - delta)


class _RateLimitSignal:
    """Tells a real limit from an overloaded server's scattered 429s: a 429 that says the quota
    is spent (``x-ratelimit-remaining-*: 0``), or 429s on at least ``share`` of the last
    ``size`` attempts (``min_samples`` of them at least)."""

    def __init__(self, size: int = 50, share: float = 0.35, min_samples: int = 20) -> None:
        self.share, self.min_samples = share, min_samples
        self.recent: collections.deque[bool] = collections.deque(maxlen=size)
        self.limited = 0  # 429s among ``recent``

    def record(self, limited: bool) -> None:
        if len(self.recent) == self.recent.maxlen and self.recent[0]:
            self.limited -= 1
        self.recent.append(limited)
        self.limited += limited

    def real_limit(self, error: RateLimitError) -> bool:
        """Record the 429 ``error``; True when it shows a real limit (the window then starts
        afresh, so one burst of 429s slows the run down once)."""
        self.record(True)
        crowded = len(self.recent) >= self.min_samples and (
            self.limited >= self.share * len(self.recent)
        )
        if error.exhausted or crowded:
            self.recent.clear()
            self.limited = 0
            return True
        return False


async def _wait_one(task: asyncio.Future[Any], timeout: float) -> bool:
    """Wait until ``task`` is done or ``timeout`` seconds have passed; whether it is done.
    ``asyncio.wait`` for one task, at about half its cost (it runs for every request)."""
    if task.done():
        return True
    loop = asyncio.get_running_loop()
    woken: asyncio.Future[None] = loop.create_future()

    def wake(_: object = None) -> None:
        if not woken.done():
            woken.set_result(None)

    task.add_done_callback(wake)
    timer = loop.call_later(timeout, wake)
    try:
        await woken
    finally:
        timer.cancel()
        task.remove_done_callback(wake)
    return task.done()


def _keep_answered(tasks: Iterable[asyncio.Future[R]], keep: Callable[[R], None]) -> None:
    """Hand the first answer among ``tasks`` that nobody took (the run was cancelled as it
    arrived) to ``keep``: it was paid for. A failure to store it is the store's to count."""
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is None:
            with contextlib.suppress(Exception):
                keep(task.result())
            return


class _NoCopy(Exception):
    """A copy of a late request could not be sent after all (``Dispatcher._copy``)."""


class _AdaptiveGate:
    """Caps requests in flight; on a real rate limit halves the cap and pauses everyone until
    Retry-After has passed.

    Waiters queue in FIFO order and a finished request wakes exactly one of them, so the cost
    per request stays constant however many requests are queued (a condition variable's
    ``notify_all`` would wake every queued request on every completion).

    ``acquire`` returns whether the slot is a probe, to hand back to ``release``.
    """

    def __init__(self, limit: int) -> None:
        self.max_limit = float(limit)
        self.limit = float(limit)
        self.in_flight = 0
        self.pause_until = 0.0
        # While connections fail and nothing is answered, one request at a time probes the
        # server, each failure holding the others back for its backoff: a dead server sees a
        # trickle. Requests sent before (perhaps held by a slow server) do not block the probe.
        self.probing = False
        self.probes = 0
        self.probe_until = 0.0
        self._waiters: collections.deque[asyncio.Future[bool]] = collections.deque()
        # requests something waits on to build others (the run's critical path) go first
        self._urgent: collections.deque[asyncio.Future[bool]] = collections.deque()

    def _free(self) -> bool:
        if self.in_flight >= max(1, int(self.limit)):
            return False
        return not self.probing or self.probes == 0

    def _take(self) -> bool:
        self.in_flight += 1
        if self.probing:
            self.probes += 1
        return self.probing

    async def acquire(self, *, urgent: bool = False) -> bool:
        """A slot. ``urgent``: ahead of the requests that are not (FIFO among the urgent)."""
        while True:
            wait = max(self.pause_until, self.probe_until) - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self._wake()  # slots freed while nobody could take them go to the queue first
            if self._free() and not self._waiters and not self._urgent:
                return self._take()
            fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            queue = self._urgent if urgent else self._waiters
            queue.append(fut)
            try:
                probe = await fut
            except asyncio.CancelledError:
                with contextlib.suppress(ValueError):
                    queue.remove(fut)
                if fut.done() and not fut.cancelled():
                    self.release(fut.result())  # handed a slot we will not use: pass it on
                raise
            # Woken with a slot reserved for us (in_flight already counts it) unless a pause
            # started meanwhile; then give the slot back and wait again.
            if max(self.pause_until, self.probe_until) > time.monotonic():
                self.release(probe)
                continue
            return probe

    def has_room(self) -> bool:
        """True when a request could enter now, without waiting behind others or a pause."""
        paused = max(self.pause_until, self.probe_until) > time.monotonic()
        return self._free() and not self._waiters and not self._urgent and not paused

    def _wake(self) -> None:
        while (self._urgent or self._waiters) and self._free():
            fut = (self._urgent or self._waiters).popleft()
            if not fut.done():
                fut.set_result(self._take())

    def release(self, probe: bool) -> None:
        self.in_flight -= 1
        if probe:
            self.probes -= 1
        self._wake()

    def on_answer(self) -> None:
        """The server answered (perhaps with an error status): it is there, stop probing."""
        if self.probing:
            self.probing, self.probe_until = False, 0.0
            self._wake()

    async def on_success(self) -> None:
        self.on_answer()
        if self.limit < self.max_limit:
            self.limit = min(self.max_limit, self.limit + 1.0 / max(1.0, self.limit))
            self._wake()

    def on_connection_failure(self, delay: float) -> None:
        log.debug("connections fail: probing one request at a time for %.2f s", delay)
        self.probing = True
        self.probe_until = max(self.probe_until, time.monotonic() + delay)

    async def on_rate_limit(self, delay: float) -> None:
        log.debug(
            "a real rate limit: %d in flight at most (%d now), a pause of %.2f s",
            self.limit / 2,
            self.in_flight,
            delay,
        )
        self.limit = max(1.0, self.limit / 2)
        self.pause_until = max(self.pause_until, time.monotonic() + delay)


def _kind(error: EngineError) -> str:
    """A short name for the kind of failure, the unit of the aggregated warnings."""
    if isinstance(error, ConnectionFailedError):
        return error.reason
    if isinstance(error, RateLimitError):
        return "HTTP 429 (rate limited)"
    if error.status is not None:
        return f"HTTP {error.status}"
    return type(error).__name__


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class _FailureLog:
    """Failed attempts, logged as one warning line per kind of error with counts, at most
    every ``interval`` seconds (the first failure is logged at once)."""

    def __init__(self, where: str, interval: float) -> None:
        self.where, self.interval = where, interval
        self.last = -float("inf")
        self.retried: Counter[str] = Counter()
        self.gave_up: Counter[str] = Counter()
        self.example: dict[str, str] = {}

    def add(self, error: EngineError, gave_up: bool) -> None:
        kind = _kind(error)
        (self.gave_up if gave_up else self.retried)[kind] += 1
        self.example.setdefault(kind, str(error)[:200])
        if time.monotonic() - self.last >= self.interval:
            self.flush()

    def flush(self) -> None:
        if not self.retried and not self.gave_up:
            return
        since = time.monotonic() - self.last
        period = f" in the last {since:.0f} s" if since < 3600 else ""
        for kind in sorted({*self.retried, *self.gave_up}):
            counts = []
            if self.retried[kind]:
                counts.append(_plural(self.retried[kind], "attempt") + " to retry")
            if self.gave_up[kind]:
                counts.append(_plural(self.gave_up[kind], "request") + " given up")
            log.warning(
                "%s: %s%s: %s; e.g. %s",
                self.where,
                kind,
                period,
                ", ".join(counts),
                self.example[kind],
            )
        self.clear()
        self.last = time.monotonic()

    def clear(self) -> None:
        self.retried.clear()
        self.gave_up.clear()
        self.example.clear()


class _Breaker:
    """Tells a server that is gone from one that answers slowly or unreliably.

    Connection failures (refused, reset, timed out) are weighed against answers over the same
    period: a failed attempt is evidence only when nothing at all was answered between the
    moment it was sent and the moment it failed. An attempt that waited on a slow or held
    request while the server answered others is not (the server is alive); any answer, even an
    error status, clears the evidence. The breaker opens when at least ``min_failures``
    attempts in a row are evidence and the server has answered nothing for ``window`` seconds
    (``quick`` before the first answer, so a wrong port is reported at once), counted from the
    first of them being sent, and never longer than ``timeout``: attempts that waited a whole
    timeout for an answer that nobody got are as telling as ``window`` seconds of refusals.
    """

    def __init__(
        self,
        window: float | None,
        quick: float = 1.0,
        min_failures: int = 3,
        timeout: float = float("inf"),
    ) -> None:
        self.window, self.min_failures, self.timeout = window, min_failures, timeout
        self.quick = min(quick, window or quick)
        self.answered = False
        self.last_answer = -float("inf")  # when the server last answered anything
        self.since: float | None = None  # when the first failed attempt since then was sent
        self.failures = 0  # failed attempts since the last answer that saw no answer
        self.reason = ""
        self.error: ServerUnreachableError | None = None
        self.opened: asyncio.Event | None = None

    def success(self) -> None:
        """The server answered (a completion, or an error status: it is alive)."""
        self.answered = True
        self.last_answer = time.monotonic()
        self.since = None
        self.failures = 0

    def failure(self, error: EngineError, sent: float) -> bool:
        """Record an attempt sent at ``sent`` (``time.monotonic()``) that failed with
        ``error``; True when it is evidence that the server is unreachable."""
        if self.window is None or self.error is not None:
            return False
        if not isinstance(error, ConnectionFailedError):
            self.success()  # the server answered, if with an error
            return False
        if self.last_answer >= sent:
            return False  # others were answered meanwhile: a slow or unlucky request
        self.since = sent if self.since is None else min(self.since, sent)
        self.failures += 1
        self.reason = error.reason
        return True

    def should_open(self) -> bool:
        if self.window is None or self.since is None or self.error is not None:
            return False
        if self.failures < self.min_failures:
            return False
        window = min(self.window if self.answered else self.quick, self.timeout)
        return time.monotonic() - self.since >= window


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
        if not getattr(engine, "timeout_given", True):
            # the run's timeout is the engine's: its HTTP client waits as long as the dispatcher
            engine.timeout = self.config.timeout
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
        # the one deadline of an attempt: the run's, or an engine's own when it was built
        # with a shorter one (its HTTP client would give up first anyway)
        self.timeout = min(self.config.timeout, engine.timeout or self.config.timeout)
        self._breaker = _Breaker(self.config.breaker_window, timeout=self.timeout)
        self._hedging = HedgePolicy(
            enabled=self.config.hedge, after=self.config.hedge_after, timeout=self.timeout
        )
        self._rate_limits = _RateLimitSignal()
        where = host_of(engine.base_url) or host_of(engine.default_base_url) or engine.name
        self._failures = _FailureLog(where, self.config.warn_interval)
        # the disk is full, or the cache damaged: send nothing more
        self._halted: DiskFullError | CacheDamagedError | None = None
        self._draining: set[asyncio.Task[None]] = set()  # answers awaited after a halt
        self.lists: Any = None  # prompt_lists.PromptLists on engines that take several
        per_request = min(self.config.prompts_per_request, engine.max_prompts_per_request)
        if per_request > 1:
            self.lists = PromptLists(self, per_request, self.config.prompt_list_delay)
        self.batcher: Any = None
        self.peers: list[Dispatcher] = []  # those sharing one budget (``share_budget``)
        if self.config.batch is not None:
            from instructgen.batching import Batcher, supports_batch

            if supports_batch(engine):
                self.batcher = Batcher(self, self.config.batch)
                self.stats.batch = self.batcher.stats
            else:
                log.warning("engine %s has no batch API: every request runs online", engine.name)

    # -- lifecycle --------------------------------------------------------------------------

    def _limits(self) -> _AdaptiveGate:
        # Created lazily inside the running loop (asyncio primitives bind to it).
        if self._gate is None:
            cfg = self.config
            self._gate = _AdaptiveGate(cfg.concurrency)
            self._breaker.opened = asyncio.Event()
            on_disk_full(self, self.cache.path if self.cache is not None else None)
            if cfg.rpm:
                self._rpm = TokenBucket(cfg.rpm / 60.0, 1.0)  # no burst: never above the cap
            if cfg.tpm:
                self._tpm = TokenBucket(cfg.tpm / 60.0, cfg.tpm / 60.0 * 10)
        return self._gate

    async def __aenter__(self) -> Dispatcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def halt(self, error: DiskFullError | CacheDamagedError) -> DiskFullError | CacheDamagedError:
        """Stop sending: a write found the disk full, or the cache is damaged (``error`` is
        raised by every request from now on; the first one wins, and is returned). Any thread
        may call it."""
        if self._halted is None:
            self._halted = error
        return self._halted

    async def aclose(self) -> None:
        if self.lists is not None:
            await self.lists.aclose()
        if self._draining:  # the answers in flight when the disk filled up: store them
            await asyncio.gather(*self._draining, return_exceptions=True)
        # the final figures, also when the run ends early (a budget, Ctrl-C): what a caller
        # shows or records as paid is never a report up to 0.1 s old
        self._emit(force=True)
        if self._breaker.error is None:
            self._failures.flush()
        if self.batcher is not None:
            await self.batcher.aclose()
        await self.engine.aclose()
        self._breaker.opened = None
        self._gate = None
        self._rpm = self._tpm = None

    # -- one budget for the dispatchers of one run -----------------------------------------------

    def spent(self, *, reserved: bool = True) -> float:
        """What this dispatcher and those sharing its budget (``share_budget``) have paid,
        plus (``reserved``) the worst case of what they have in flight: ``--max-cost`` covers
        every engine of a run together."""
        total = 0.0
        for d in self.peers or [self]:
            total += d.stats.cost
            if reserved:
                total += d._reserved
                if d.batcher is not None:
                    total += d.batcher._reserved
        return total

    # -- estimates ----------------------------------------------------------------------------

    def worst_case_cost(self, request: Request) -> float:
        if self._price is None:
            return 0.0
        return self._price.cost(Usage(prompt_tokens(request), request.max_tokens * request.n))

    def key(self, request: Request, sample: int = 0) -> str:
        return cache_key(self._identity, request, sample)

    # -- running ------------------------------------------------------------------------------

    def expect(self, n: int) -> None:
        """Announce ``n`` more requests so progress can show a total and an ETA."""
        self.expected += n

    async def complete(
        self, request: Request, *, sample: int = 0, batchable: bool = False
    ) -> Completion:
        """``batchable``: nothing waits on this request to build another one, so in batch
        mode it may go through the engine's batch API (``batching.py``), and online it waits
        for a slot behind the requests that are not batchable (something waits on those: they
        are the run's critical path, e.g. the Self-Instruct bootstrap). On engines that take
        several prompts a request, it may share one with others (``prompt_lists.py``)."""
        key = self.key(request, sample) if self.cache is not None else ""
        if self.cache is not None:
            try:
                hit = self.cache.get(key)
            except CacheDamagedError as exc:
                raise self.halt(exc) from None
            if hit is not None:
                self.stats.cached += 1
                self._emit()
                return hit
        if batchable and self.batcher is not None:
            return await self.batcher.complete(request, sample, key or self.key(request, sample))
        if self.lists is not None and self.lists.accepts(request):
            return await self.lists.complete(request, key, urgent=not batchable)
        return await self._online(request, key, urgent=not batchable)

    async def _online(self, request: Request, key: str, *, urgent: bool = True) -> Completion:
        """``request`` sent on its own (not looked up in the cache), its answer stored."""
        est_tokens = prompt_tokens(request) + request.max_tokens * request.n

        async def call() -> Completion:
            completion = await self._call(request, key, est_tokens)
            check_reply_size(completion, self.config.max_reply_bytes, self.engine.name)
            return completion

        def deliver(completion: Completion) -> None:
            if self.cache is not None:
                self._store(key, completion)  # committed before anyone uses it
            self._account(completion, est_tokens)

        return await self._send(
            call,
            deliver,
            worst=self.worst_case_cost(request),
            est_tokens=est_tokens,
            kind=(request.max_tokens, 1),
            urgent=urgent,
        )

    async def _send(
        self,
        call: Callable[[], Awaitable[R]],
        deliver: Callable[[R], None],
        *,
        worst: float,
        est_tokens: int,
        prompts: int = 1,
        splittable: bool = False,
        kind: tuple[int, int] = (0, 1),
        urgent: bool = True,
    ) -> R:
        """One request to the engine, ``call()``, with every policy of the module: the gate,
        the budget (``worst`` reserved while it runs), the RPM (one) and TPM (``est_tokens``)
        buckets, retries with backoff and the circuit breaker. ``deliver(result)`` stores and
        accounts an answer before it is returned. ``prompts``: how many prompts the request
        carries (statistics). ``splittable``: a request carrying several prompts that does not
        fit the budget or fails for good raises ``SplitRequest`` instead (its prompts are then
        sent on their own; nothing is counted as failed). ``kind``: the requests it is compared
        with to tell whether it is late (``hedging.py``): its ``max_tokens``, and 1 for one
        prompt, 2 for a list. ``urgent``: it waits for a slot ahead of requests that are not."""
        gate = self._limits()
        cfg = self.config
        breaker = self._breaker
        limited = 0  # attempts answered 429: they wait as the server says, up to the patience
        limited_since = 0.0
        attempt = 0
        while True:
            attempt += 1
            if self._halted is not None:
                raise self._halted
            if breaker.error is not None:
                raise copy.copy(breaker.error)
            probe = await gate.acquire(urgent=urgent)
            try:
                if self._halted is not None:
                    raise self._halted
                if breaker.error is not None:
                    raise copy.copy(breaker.error)
                if cfg.max_cost is not None and self.spent() + worst > cfg.max_cost:
                    if splittable:
                        raise SplitRequest(None)
                    raise BudgetExceededError(
                        f"stopping before the budget of {format_usd(cfg.max_cost)} is exceeded "
                        f"(spent {format_usd(self.spent(reserved=False))}); finished requests "
                        "are cached: "
                        "rerun the same command with a higher --max-cost to resume"
                    )
                if self._rpm is not None:
                    await self._rpm.acquire(1)
                if self._tpm is not None:
                    await self._tpm.acquire(est_tokens)
                self._reserved += worst
                self.stats.sent += 1
                self.stats.prompts_sent += prompts
                sent = time.monotonic()
                try:
                    result = await self._attempt(
                        call, kind=kind, worst=worst, est_tokens=est_tokens, keep=deliver
                    )
                except asyncio.TimeoutError:
                    error: EngineError = ConnectionFailedError(
                        f"no answer within {self.timeout:g} s",
                        reason="timed out",
                        engine=self.engine.name,
                        status=408,
                    )
                except EngineError as exc:
                    error = exc
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # an engine plugin's unexpected failure
                    error = from_exception(exc, engine=self.engine.name)
                else:
                    deliver(result)
                    if self._halted is not None:
                        raise self._halted  # kept; but the disk is full: stop
                    breaker.success()
                    self._rate_limits.record(False)
                    await gate.on_success()
                    return result
                finally:
                    self._reserved -= worst
            finally:
                gate.release(probe)
            if breaker.error is not None:
                raise copy.copy(breaker.error)  # opened while this attempt was in flight
            error = redact(error, self.engine.api_key)  # servers echo keys in messages
            self.stats.errors[type(error).__name__] += 1
            unreachable = breaker.failure(error, sent)
            if breaker.should_open():
                raise self._open_circuit()
            if isinstance(error, RateLimitError):
                limited += 1
                limited_since = limited_since or time.monotonic()
            if splittable and not error.retryable and not isinstance(error, AuthenticationError):
                self._failures.add(error, gave_up=False)
                raise SplitRequest(error)
            if (
                not error.retryable
                or attempt - limited >= cfg.max_attempts
                or limited >= 4 * cfg.max_attempts
                or (limited and time.monotonic() - limited_since >= cfg.rate_limit_patience)
            ):
                self.stats.failed += prompts
                self._failures.add(error, gave_up=True)
                self._emit()
                if error.retryable:
                    gave_up = copy.copy(error)
                    gave_up.args = (f"{error} (gave up after {attempt} attempts)",)
                    raise gave_up from error
                raise error
            # A failure after 429s is backed off by its own count: 429s wait as they are told.
            rate_limited = isinstance(error, RateLimitError)
            delay = self._backoff(attempt if rate_limited else attempt - limited, error)
            if isinstance(error, RateLimitError):
                if self._rate_limits.real_limit(error):
                    await gate.on_rate_limit(delay)
            elif unreachable:
                gate.on_connection_failure(delay)
            if not isinstance(error, ConnectionFailedError):
                gate.on_answer()
            self.stats.retried += 1
            self._failures.add(error, gave_up=False)
            log.info("retrying in %.2fs after %s", delay, error)
            self._emit()
            await self._sleep(delay)

    async def _attempt(
        self,
        call: Callable[[], Awaitable[R]],
        *,
        kind: tuple[int, int],
        worst: float,
        est_tokens: int,
        keep: Callable[[R], None],
    ) -> R:
        """One attempt, ``call()``; when it is late for its ``kind`` and the limits leave room,
        a copy races it (``hedging.py``). Raises what the attempt (or, raced, the last of the
        two) raised. An answer that arrived as the run was cancelled is handed to ``keep``
        (stored and counted: it was paid for)."""
        started = time.monotonic()
        if not self._hedging.enabled:
            return await call()
        first = asyncio.ensure_future(call())
        racing = False
        try:
            while True:
                delay = self._hedging.delay(kind)
                late = time.monotonic() - started
                if delay is None:  # too few answers of its kind yet: look again later
                    wait = self._hedging.recheck()
                elif late < delay:
                    wait = delay - late
                elif self._may_hedge(worst):
                    racing = True
                    return await self._race(first, call, kind, delay, worst, est_tokens, keep)
                else:  # no copy now (the budget, the share of copies, a silent server)
                    wait = min(1.0, delay / 4)
                if await _wait_one(first, wait):
                    break
        except BaseException:
            if not racing:
                _keep_answered([first], keep)
            raise
        finally:
            if not first.done():
                first.cancel()
                with contextlib.suppress(BaseException):
                    await first
        result = first.result()
        self._hedging.record(kind, time.monotonic() - started)
        return result

    def _may_hedge(self, worst: float) -> bool:
        """A copy may be sent: the run goes on, the server answers, the copies are within
        their share and the budget has room for one more request's worst case."""
        gate, cfg = self._gate, self.config
        if gate is None or self._halted is not None or self._breaker.error is not None:
            return False
        if gate.probing or not HedgePolicy.within_share(self.stats.hedged, self.stats.sent):
            return False
        return cfg.max_cost is None or self.spent() + worst <= cfg.max_cost

    async def _copy(
        self,
        call: Callable[[], Awaitable[R]],
        worst: float,
        est_tokens: int,
        sent: list[float],
        wait: float = 0.0,
    ) -> R:
        """A copy of a late attempt, after ``wait`` seconds (the backoff after a failed copy),
        once the RPM and TPM allow it, if the budget and the share of copies still have room.
        It shares its original's slot under ``--concurrency``: one request, one slot (the
        server sees one more connection for it). ``sent`` gets the time it was sent. Raises
        ``_NoCopy`` when it could not be sent."""
        if wait > 0:
            await self._sleep(wait)
        if self._rpm is not None:
            await self._rpm.acquire(1)
        if self._tpm is not None:
            await self._tpm.acquire(est_tokens)
        if not self._may_hedge(worst):
            raise _NoCopy
        self._reserved += worst
        self.stats.hedged += 1
        log.info("no answer yet from a request late for its kind: sending a copy")
        sent.append(time.monotonic())
        try:
            return await call()
        finally:
            self._reserved -= worst

    async def _race(
        self,
        first: asyncio.Future[R],
        call: Callable[[], Awaitable[R]],
        kind: tuple[int, int],
        delay: float,
        worst: float,
        est_tokens: int,
        keep: Callable[[R], None],
    ) -> R:
        """Race the attempt ``first`` against a copy (``_copy``) and return whichever answers
        first; the other is cancelled (and, when it was answered too, its usage counted: it was
        paid). A copy that fails while the original is still out is followed by another after
        the usual backoff, and one that is late too (``delay`` seconds without an answer) by
        another at once, within the share of copies. When the original fails and no copy is
        out, the original's error is raised, for the usual retry."""
        sent: dict[asyncio.Future[R], list[float]] = {}  # each copy's time sent, once sent

        def another(wait: float = 0.0) -> asyncio.Future[R]:
            mark: list[float] = []
            task = asyncio.ensure_future(self._copy(call, worst, est_tokens, mark, wait))
            sent[task] = mark
            return task

        copy = another()
        pending: set[asyncio.Future[R]] = {first, copy}
        winner: asyncio.Future[R] | None = None
        error: BaseException | None = None
        try:
            while pending and winner is None:
                latest = sent[copy]  # empty while it waits for its backoff or the RPM
                wait = max(0.0, latest[0] + delay - time.monotonic()) if latest else delay
                done, pending = await asyncio.wait(
                    pending,
                    timeout=wait if copy in pending else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not done:
                    if sent[copy]:  # the latest copy is late too: one more
                        copy = another()
                        pending.add(copy)
                    continue
                for task in sorted(done, key=lambda t: t is not first):  # the original first
                    exc = task.exception()
                    if exc is None:
                        if winner is None:
                            winner = task
                        else:  # both answered in the same instant: the copy was paid too
                            self._account_copy(task.result())
                        continue
                    if isinstance(exc, _NoCopy):
                        continue
                    error = exc
                    if task is first:
                        continue
                    self.stats.errors[type(exc).__name__] += 1
                    retryable = isinstance(exc, asyncio.TimeoutError) or (
                        isinstance(exc, EngineError) and exc.retryable
                    )
                    if first in pending and retryable and task is copy:
                        failed = sum(1 for t in sent if t.done())
                        backoff = self._backoff(failed, exc) if isinstance(exc, EngineError) else 0
                        copy = another(backoff)
                        pending.add(copy)
                copies_out = sum(1 for t in pending if t is not first and sent[t])
                if winner is None and first not in pending and not copies_out:
                    break  # the original failed and no copy is out: retry as usual
        except BaseException:
            if winner is None:
                _keep_answered([first, *sent], keep)
            raise
        finally:
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(BaseException):
                    await task  # a copy answered as it was cancelled is stored and counted
        if winner is None:
            assert error is not None
            raise error
        if winner is not first:
            self.stats.hedges_first += 1
            self._hedging.record(kind, time.monotonic() - sent[winner][0])
        return winner.result()

    def _account_copy(self, result: Any) -> None:
        """The usage and cost of an answer that was paid but not used (the slower of a raced
        pair that answered at once)."""
        usage = getattr(result, "usage", None)
        if not isinstance(usage, Usage):
            return
        self.stats.usage = self.stats.usage + usage
        if self._price is not None:
            self.stats.cost += self._price.cost(usage)

    async def _call(self, request: Request, key: str, est_tokens: int) -> Completion:
        """The engine's answer to ``request``, within the timeout. With a cache, the call runs
        as a task of its own: when the run is cancelled because the disk is full, the call goes
        on and ``aclose`` stores its answer (it is paid for); any other cancellation stops it."""
        with reply_size_limit(self.config.max_reply_bytes):  # a task copies it when made
            call = with_timeout(self.engine.acomplete(request), self.timeout)
            if self.cache is None:
                return await call
            task = asyncio.ensure_future(call)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():  # answered as the run was cancelled: paid for, so keep it
                if not task.cancelled() and task.exception() is None:
                    self._store(key, task.result(), raising=False)
                    self._account(task.result(), est_tokens)
                raise
            if self._halted is not None:
                keep = asyncio.ensure_future(self._keep(task, key, est_tokens))
                self._draining.add(keep)
                keep.add_done_callback(self._draining.discard)
            else:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            raise

    async def _keep(self, call: asyncio.Task[Completion], key: str, est_tokens: int) -> None:
        """Store the answer of a request that was in flight when the disk filled up."""
        try:
            completion = await call
        except Exception:
            return  # no answer came: nothing was received
        self._store(key, completion, raising=False)
        self._account(completion, est_tokens)

    def _store(self, key: str, completion: Completion, *, raising: bool = True) -> None:
        """Commit an answer to the cache. One that cannot be stored (no space, damaged pages)
        halts the dispatcher and is counted on the halt's error (a rerun asks for it again)."""
        assert self.cache is not None
        try:
            self.cache.put(key, completion)
        except (DiskFullError, CacheDamagedError) as exc:
            halted = self.halt(exc)
            halted.unsaved += 1
            if raising:
                raise halted from None

    async def _sleep(self, delay: float) -> None:
        """Back off for ``delay`` seconds, or less if the circuit opens meanwhile."""
        opened = self._breaker.opened
        if opened is None:
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(opened.wait(), delay)

    def _open_circuit(self) -> ServerUnreachableError:
        b = self._breaker
        kept = None
        if self.cache is not None:
            with contextlib.suppress(Exception):
                kept = len(self.cache)
        b.error = ServerUnreachableError(
            host=self._failures.where,
            reason=b.reason,
            sent=self.stats.completed,
            cached=self.stats.cached,
            kept=kept,
            seconds=time.monotonic() - (b.since or time.monotonic()),
            engine=self.engine.name,
        )
        if b.opened is not None:
            b.opened.set()
        self._failures.clear()  # the one error line says it all
        log.debug("circuit open: %s", b.error)
        return b.error

    def _backoff(self, attempt: int, error: EngineError) -> float:
        """The server's ``Retry-After`` when it gave one, else exponential with jitter in the
        number of failed ``attempt`` s that were not rate limited (a request held back by 429s
        is not backed off longer when it next fails to connect)."""
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


def share_budget(dispatchers: Sequence[Dispatcher]) -> None:
    """Make ``dispatchers`` (one per engine of a run) spend from one budget: each checks
    ``max_cost`` against what all of them paid and hold in flight."""
    group = list(dispatchers)
    for d in group:
        d.peers = group


def with_batch(config: Any, batch: Any) -> Any:
    """``config`` (a ``DispatchConfig`` or ``None``) with batch mode set from the API's
    ``batch`` argument (``True``, ``False`` or a ``BatchConfig``); unchanged when it is off."""
    if batch is False or batch is None:
        return config
    if batch is True and config is not None and config.batch is not None:
        return config
    import dataclasses

    from instructgen.batching import BatchConfig

    if batch is not True and not isinstance(batch, BatchConfig):
        raise ConfigError(f"batch must be True, False or a BatchConfig, got {batch!r}")
    return dataclasses.replace(config or DispatchConfig(), batch=batch)

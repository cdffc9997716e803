"""Batch mode: requests that depend on nothing still to come go through a provider's batch API.

Pipelines only mark requests as batchable (``dispatcher.complete(req, batchable=True)``); when
the dispatcher runs with ``DispatchConfig(batch=BatchConfig(...))`` and its engine offers
batches, the ``Batcher`` here collects those requests, submits a batch when enough are waiting
or none arrived for ``idle`` seconds, polls it (with backoff) and resolves each waiting request
from its results. Everything else (a cache hit, a request not marked batchable, an engine
without batches) runs online as before.

Crash safety: the batch id and the cache keys of its requests are committed to the cache
database (table ``batch_requests``) before the batcher waits on the batch, and results land in
the same per-request cache as online answers. A rerun after a crash finds a pending request's
key in that table and resumes polling the same batch instead of submitting it again. Lines that
failed are retried: in a new batch, or online with ``fallback="online"``.

The engine contract (``BatchEngine``): ``abatch_submit(items) -> batch id``,
``abatch_poll(id) -> BatchStatus``, ``abatch_fetch(id) -> {custom id: Completion or
EngineError}`` and ``abatch_cancel(id)``. The custom id of each line is the request's cache key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from instructgen.batch_contract import (
    BATCH_TOKEN_FIELD,
    TERMINAL_STATES,
    BatchEngine,
    BatchStatus,
    batch_price,
    supports_batch,
)
from instructgen.engine_contract import Completion, Request, Usage
from instructgen.errors import (
    AuthenticationError,
    BudgetExceededError,
    ConfigError,
    EngineError,
    ReplyTooLargeError,
    TransientEngineError,
)
from instructgen.money import format_usd
from instructgen.progress import ProgressEvent, emit
from instructgen.reply_size import reply_size_limit
from instructgen.tokens import prompt_tokens

if TYPE_CHECKING:
    from instructgen.dispatch import Dispatcher

log = logging.getLogger("instructgen.batching")

__all__ = [
    "TERMINAL_STATES",
    "BatchConfig",
    "BatchEngine",
    "BatchStats",
    "BatchStatus",
    "Batcher",
    "batch_price",
    "supports_batch",
]

SUBMITTING = "submitting:"  # the database's marker of a submission not seen through
TOKEN_FIELD = BATCH_TOKEN_FIELD

BatchFallback = Literal["batch", "online"]


@dataclass
class BatchConfig:
    """How batch mode runs. ``idle``: seconds without a new batchable request before the
    waiting ones are submitted; ``max_requests``: submit at once when this many wait (capped
    by the engine's ``max_batch_requests``); polls start every ``poll_interval`` seconds and
    slow down by ``poll_factor`` up to ``poll_max``; lines that failed are retried
    ``max_rounds`` times, in a new batch (``fallback="batch"``) or online (``"online"``)."""

    idle: float = 2.0
    max_requests: int = 50_000
    poll_interval: float = 10.0
    poll_max: float = 300.0
    poll_factor: float = 1.5
    fallback: BatchFallback = "batch"
    max_rounds: int = 3
    completion_window: str = "24h"

    def __post_init__(self) -> None:
        if self.fallback not in ("batch", "online"):
            raise ConfigError(f"batch fallback must be 'batch' or 'online', got {self.fallback!r}")
        if self.idle < 0 or self.poll_interval <= 0 or self.poll_max <= 0:
            raise ConfigError("batch idle must be >= 0 and poll intervals positive")
        if self.max_requests < 1 or self.max_rounds < 1:
            raise ConfigError("batch max_requests and max_rounds must be at least 1")
        self.poll_factor = max(1.0, self.poll_factor)


@dataclass
class BatchStats:
    batches: int = 0  # batches submitted by this run
    resumed: int = 0  # batches of an earlier run followed to their end
    submitted: int = 0  # lines submitted
    completed: int = 0  # lines answered (this run's and resumed batches')
    failed: int = 0  # lines that failed in a batch
    retried: int = 0  # failed lines sent again
    online_fallback: int = 0  # failed lines sent online
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0
    states: dict[str, str] = field(default_factory=dict)  # batch id -> last state seen

    def to_dict(self) -> dict[str, Any]:
        return {
            "batches_submitted": self.batches,
            "batches_resumed": self.resumed,
            "requests_submitted": self.submitted,
            "requests_completed": self.completed,
            "requests_failed": self.failed,
            "requests_retried": self.retried,
            "requests_sent_online_after_failing": self.online_fallback,
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
            "cost_usd": round(self.cost, 6),
            "batches": dict(self.states),
        }


@dataclass
class _Pending:
    request: Request
    sample: int
    futures: list[asyncio.Future[Completion]] = field(default_factory=list)
    rounds: int = 0
    reserved: float = 0.0


class Batcher:
    """Collects a dispatcher's batchable requests into batches; see the module docstring."""

    def __init__(self, dispatcher: Dispatcher, config: BatchConfig) -> None:
        self.dispatcher = dispatcher
        self.engine: Any = dispatcher.engine
        self.cache = dispatcher.cache
        self.config = config
        self.stats = BatchStats()
        self.price = batch_price(dispatcher.engine.price())
        self._pending: dict[str, _Pending] = {}  # key -> what waits for it
        self._queue: dict[str, None] = {}  # keys waiting to be submitted, in order
        self._followed: dict[str, asyncio.Task[None]] = {}  # batch id -> its poller
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._reserved = 0.0
        limit = int(getattr(self.engine, "max_batch_requests", 50_000) or 50_000)
        self._max = max(1, min(config.max_requests, limit))

    # -- entry point ---------------------------------------------------------------------------

    async def complete(self, request: Request, sample: int, key: str) -> Completion:
        """The completion of ``request`` (cache already missed), through a batch."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Completion] = loop.create_future()
        pending = self._pending.get(key)
        if pending is not None:  # the same request twice at once: one line, two waiters
            pending.futures.append(fut)
            return await fut
        pending = _Pending(request, sample, [fut])
        batch_id = self.cache.batch_of(key) if self.cache is not None else None
        if batch_id is None:
            self._reserve(pending)
        self._pending[key] = pending
        if batch_id is not None:
            self._follow(batch_id, resumed=True)  # an earlier run submitted it: never again
        else:
            self._enqueue(key)
        try:
            return await fut
        finally:
            if not fut.done():  # the caller was cancelled
                fut.cancel()

    def _reserve(self, pending: _Pending) -> None:
        cfg = self.dispatcher.config
        if self.price is None:
            return
        r = pending.request
        worst = self.price.cost(Usage(prompt_tokens(r), r.max_tokens * r.n))
        spent = self.dispatcher.spent()  # every engine of the run, this batcher's reserve too
        if cfg.max_cost is not None and spent + worst > cfg.max_cost:
            raise BudgetExceededError(
                f"stopping before the budget of {format_usd(cfg.max_cost)} is exceeded "
                f"(spent {format_usd(self.dispatcher.spent(reserved=False))}); finished "
                "requests are cached: rerun the same command with a higher --max-cost to resume"
            )
        pending.reserved = worst
        self._reserved += worst

    def _release(self, pending: _Pending) -> None:
        self._reserved -= pending.reserved
        pending.reserved = 0.0

    # -- collecting and submitting -------------------------------------------------------------

    def _enqueue(self, key: str) -> None:
        self._queue[key] = None
        if len(self._queue) >= self._max:
            self._flush()
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self.config.idle, self._flush)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._queue:
            keys = list(self._queue)[: self._max]
            for k in keys:
                del self._queue[k]
            keys = [k for k in keys if k in self._pending and self._live(self._pending[k])]
            if keys:
                self._spawn(self._submit(keys))

    def _live(self, pending: _Pending) -> bool:
        """Somebody still waits for this request (a cancelled pipeline stops submitting)."""
        return any(not f.done() for f in pending.futures)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _submit(self, keys: list[str]) -> None:
        items = [(k, self._pending[k].request) for k in keys]
        token = uuid.uuid4().hex
        marker = SUBMITTING + token
        # The intent first: a crash between the provider creating the batch and its id reaching
        # the database leaves this marker, and a rerun finds the batch by its token.
        if self.cache is not None:
            self.cache.batch_add(marker, keys, engine=self.dispatcher._identity)
        metadata = {"source": "instructgen", "requests": str(len(items)), TOKEN_FIELD: token}
        lookup = getattr(self.engine, "abatch_lookup", None)
        tried = False

        async def submit() -> str:
            nonlocal tried
            if tried and lookup is not None:  # an earlier try may have created it
                found = await lookup(token)
                if found:
                    return str(found)
            tried = True
            return str(await self.engine.abatch_submit(items, metadata=metadata))

        try:
            batch_id = await self._call(submit)
        except EngineError as exc:
            if self.cache is not None:
                self.cache.batch_done(marker)
            for k in keys:
                self._fail(k, exc)
            return
        # Committed before waiting: a rerun after a crash resumes this batch, never resubmits.
        if self.cache is not None:
            self.cache.batch_add(batch_id, keys, engine=self.dispatcher._identity)
        self.stats.batches += 1
        self.stats.submitted += len(keys)
        log.info("submitted batch %s with %d requests", batch_id, len(keys))
        self._follow(batch_id, keys=keys)

    async def _recover(self, marker: str) -> None:
        """A submission an earlier run did not see through: follow the batch it created (found
        by its token), or submit its requests afresh when the provider has none."""
        keys = self.cache.batch_keys(marker) if self.cache is not None else []
        lookup = getattr(self.engine, "abatch_lookup", None)
        found = None
        if lookup is not None:
            try:
                found = await self._call(lambda: lookup(marker[len(SUBMITTING) :]))
            except EngineError as exc:
                for k in keys:
                    self._fail(k, exc)  # kept in the database: a later rerun tries again
                return
        if found:
            if self.cache is not None:
                self.cache.batch_add(str(found), keys, engine=self.dispatcher._identity)
            self._followed.pop(marker, None)
            self._follow(str(found), resumed=True)
            return
        log.info("no batch was created for an interrupted submission; submitting it again")
        if self.cache is not None:
            self.cache.batch_done(marker)
        for k in keys:
            pending = self._pending.get(k)
            if pending is not None:
                self._reserve(pending)
                self._enqueue(k)

    def _follow(
        self, batch_id: str, *, keys: list[str] | None = None, resumed: bool = False
    ) -> None:
        if batch_id in self._followed:
            return
        if batch_id.startswith(SUBMITTING):
            self._followed[batch_id] = self._spawn(self._recover(batch_id))
            return
        if resumed:
            self.stats.resumed += 1
            log.info("resuming batch %s submitted by an earlier run", batch_id)
        self._followed[batch_id] = self._spawn(self._wait(batch_id, keys))

    # -- waiting and fetching ------------------------------------------------------------------

    async def _wait(self, batch_id: str, keys: list[str] | None) -> None:
        cfg = self.config
        delay = cfg.poll_interval
        try:
            while True:
                status = await self._call(lambda: self.engine.abatch_poll(batch_id))
                self._report(status)
                if status.finished:
                    break
                await asyncio.sleep(delay * (0.9 + random.random() * 0.2))
                delay = min(cfg.poll_max, delay * cfg.poll_factor)
            results = await self._call(lambda: self.engine.abatch_fetch(batch_id))
        except EngineError as exc:
            members = self._members(batch_id, keys)
            if not isinstance(exc, AuthenticationError) and exc.status == 404:
                if self.cache is not None:  # the provider no longer knows it: submit anew
                    self.cache.batch_done(batch_id)
                for k in members:
                    self._retry(k, exc)
            else:  # kept in the database: a rerun resumes this batch
                for k in members:
                    self._fail(k, exc)
            return
        members = self._members(batch_id, keys)
        failed: list[tuple[str, EngineError]] = []
        for key in members:
            result = results.get(key)
            limit = self.dispatcher.config.max_reply_bytes
            if isinstance(result, Completion) and sum(map(len, result.texts)) > limit:
                # an engine that read the line whole: refused, never cached (not retried)
                result = ReplyTooLargeError(limit, engine=getattr(self.engine, "name", None))
            if isinstance(result, Completion):
                if self.cache is not None:
                    self.cache.put(key, result)
                self._account(result)
                self._resolve(key, result)
            else:
                error = result or TransientEngineError(
                    f"batch {batch_id} ended ({status.state}) without an answer for this request",
                    engine=getattr(self.engine, "name", None),
                )
                self.stats.failed += 1
                failed.append((key, error))
        if self.cache is not None:
            self.cache.batch_done(batch_id)  # after the answers: a crash between keeps them
        for key, error in failed:
            self._retry(key, error)
        self.dispatcher._emit(force=True)

    def _members(self, batch_id: str, keys: list[str] | None) -> list[str]:
        if self.cache is not None:
            stored = self.cache.batch_keys(batch_id)
            if stored:
                return stored
        return list(keys or ())

    async def _call(self, make: Any) -> Any:
        """One batch API call with the dispatcher's retry policy for transient failures."""
        cfg = self.dispatcher.config
        timeout = self.dispatcher.timeout
        name = getattr(self.engine, "name", None)
        for attempt in range(1, cfg.max_attempts + 1):
            try:
                # The engine caps each result line at this (reply_size.capped_lines).
                with reply_size_limit(cfg.max_reply_bytes):
                    return await asyncio.wait_for(make(), timeout)
            except asyncio.TimeoutError:
                error: EngineError = TransientEngineError(
                    f"no answer within {timeout:g} s", engine=name, status=408
                )
            except EngineError as exc:
                error = exc
            if not error.retryable or attempt == cfg.max_attempts:
                raise error
            delay = min(cfg.backoff_max, cfg.backoff_base * 2 ** (attempt - 1))
            if error.retry_after is not None:
                delay = min(cfg.backoff_max, max(0.0, error.retry_after))
            log.info("batch API call failed (%s); retrying in %.2fs", error, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    # -- results -------------------------------------------------------------------------------

    def _account(self, completion: Completion) -> None:
        s, d = self.stats, self.dispatcher.stats
        s.completed += 1
        s.usage = s.usage + completion.usage
        d.completed += 1
        d.usage = d.usage + completion.usage
        if self.price is not None:
            cost = self.price.cost(completion.usage)
            s.cost += cost
            d.cost += cost

    def _resolve(self, key: str, completion: Completion) -> None:
        pending = self._pending.pop(key, None)
        if pending is None:
            return  # answered a request this run has not asked (yet): it is cached
        self._release(pending)
        for f in pending.futures:
            if not f.done():
                f.set_result(completion)

    def _fail(self, key: str, error: EngineError) -> None:
        pending = self._pending.pop(key, None)
        if pending is None:
            return
        self._release(pending)
        self.dispatcher.stats.failed += 1
        self.dispatcher.stats.errors[type(error).__name__] += 1
        for f in pending.futures:
            if not f.done():
                f.set_exception(error)

    def _retry(self, key: str, error: EngineError) -> None:
        pending = self._pending.get(key)
        if pending is None or not self._live(pending):
            self._pending.pop(key, None)
            if pending is not None:
                self._release(pending)
            return  # nobody waits now; a later request for it is submitted afresh
        if not error.retryable or pending.rounds + 1 >= self.config.max_rounds:
            if error.retryable:
                error = type(error)(
                    f"{error} (gave up after {pending.rounds + 1} batches)", status=error.status
                )
            self._fail(key, error)
            return
        pending.rounds += 1
        self.stats.retried += 1
        if self.config.fallback == "online":
            self.stats.online_fallback += 1
            self._spawn(self._online(key, pending))
        else:
            self._enqueue(key)

    async def _online(self, key: str, pending: _Pending) -> None:
        self._pending.pop(key, None)
        self._release(pending)
        try:
            completion = await self.dispatcher.complete(pending.request, sample=pending.sample)
        except EngineError as exc:
            outcome: Completion | EngineError = exc
        except BudgetExceededError as exc:
            for f in pending.futures:
                if not f.done():
                    f.set_exception(exc)
            return
        else:
            outcome = completion
        for f in pending.futures:
            if f.done():
                continue
            if isinstance(outcome, Completion):
                f.set_result(outcome)
            else:
                f.set_exception(outcome)

    def _report(self, status: BatchStatus) -> None:
        self.stats.states[status.id] = status.state
        log.info(
            "batch %s: %s, %d/%d done, %d failed",
            status.id,
            status.state,
            status.completed,
            status.total,
            status.failed,
        )
        emit(
            self.dispatcher.progress,
            ProgressEvent(
                stage="batch",
                done=status.completed,
                total=status.total or None,
                failed=status.failed,
                message=f"batch {status.id}: {status.state} "
                f"{status.completed}/{status.total}"
                + (f", {status.failed} failed" if status.failed else "")
                + (f" ({len(self._followed)} batches)" if len(self._followed) > 1 else ""),
            ),
        )

    # -- lifecycle -----------------------------------------------------------------------------

    async def acancel(self) -> None:
        """Cancel every batch this run follows at the provider (what was answered stays
        fetchable; a rerun fetches it and sends the rest again)."""
        for batch_id in list(self._followed):
            with contextlib.suppress(EngineError):
                await self.engine.abatch_cancel(batch_id)

    async def aclose(self) -> None:
        """Stop polling. Batches still running are left to finish at the provider: their ids
        are in the cache database, and a rerun resumes them."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._followed.clear()

"""``DispatchContext``: the ``MethodContext`` the core hands a running method.

One dispatcher per distinct engine (roles without an engine of their own share the
``instructions`` engine's), each with the run's response cache, limits, budget and batch
settings; the chosen instruction filters with their drop counts; the sliding window.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from instructgen.cache import Cache
from instructgen.dispatch import DispatchConfig, Dispatcher, gather_values, share_budget
from instructgen.engine_contract import Completion, Engine, Request
from instructgen.errors import AuthenticationError, ConfigError, EngineError
from instructgen.filter import Filter
from instructgen.method import MethodContext, RunSize, WindowStats
from instructgen.progress import ProgressCallback, ProgressEvent, emit
from instructgen.selfinstruct.window import BootstrapWindow

__all__ = ["DispatchContext", "sum_stats"]

_SUMMED = (
    "requests_sent",
    "requests_completed",
    "requests_cached",
    "requests_failed",
    "retries",
    "prompt_tokens",
    "completion_tokens",
)


def sum_stats(stats: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Dispatcher statistics (``RunStats.to_dict``) of several engines added up: counts,
    tokens, cost and errors summed, the longest elapsed time; batch figures summed too."""
    out: dict[str, Any] = {k: sum(int(s.get(k, 0)) for s in stats) for k in _SUMMED}
    out["cost_usd"] = round(sum(float(s.get("cost_usd", 0.0)) for s in stats), 6)
    out["elapsed_s"] = max((float(s.get("elapsed_s", 0.0)) for s in stats), default=0.0)
    errors: Counter[str] = Counter()
    for s in stats:
        errors.update(s.get("errors") or {})
    out["errors"] = dict(errors)
    batches = [s["batch"] for s in stats if s.get("batch")]
    if batches:
        summed: dict[str, Any] = {}
        for b in batches:
            for k, v in b.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    summed[k] = summed.get(k, 0) + v
        if "cost_usd" in summed:
            summed["cost_usd"] = round(summed["cost_usd"], 6)
        out["batch"] = summed
    return out


class DispatchContext(MethodContext):
    """Use as an async context manager: the dispatchers (and the cache) close at the end."""

    def __init__(
        self,
        engines: Mapping[str, Engine],
        *,
        size: RunSize,
        config: DispatchConfig | None = None,
        cache: Cache | None = None,
        filters: Sequence[Filter] = (),
        progress: ProgressCallback | None = None,
        stage: str = "requests",
        role_configs: Mapping[str, DispatchConfig] | None = None,
    ) -> None:
        if "instructions" not in engines:
            raise ConfigError("a run needs an engine for the 'instructions' role")
        self.engines = dict(engines)
        self.size = size
        self.config = config
        # an engine's own limits (``--response-rpm``, ...): by the role that brought it
        self.role_configs = dict(role_configs or {})
        self.cache = cache
        self.cache_location: bool | str | Path = cache.path if cache is not None else False
        self.filters = list(filters)
        self.progress = progress
        self.stage = stage
        self._dispatchers: dict[int, Dispatcher] = {}
        self.drops: Counter[str] = Counter()
        self.drop_examples: dict[str, list[str]] = defaultdict(list)
        self.filter_s = 0.0
        self._primes: list[list[str]] = []  # kept lists for the filters' prime(), in order

    # -- dispatchers ----------------------------------------------------------------------------

    def engine(self, role: str = "instructions") -> Engine:
        return self.engines.get(role) or self.engines["instructions"]

    def dispatcher(self, role: str = "instructions") -> Dispatcher:
        """The dispatcher for ``role``'s engine (built-in pipelines are written against it)."""
        eng = self.engine(role)
        d = self._dispatchers.get(id(eng))
        if d is None:
            d = self._new_dispatcher(eng)
        return d

    def _new_dispatcher(self, eng: Engine) -> Dispatcher:
        """The dispatcher of engine ``eng``: its own limits (those of the first role that
        names it with limits of its own, else the run's), one budget with the others."""
        roles = [r for r, e in self.engines.items() if e is eng]
        config = next((self.role_configs[r] for r in roles if r in self.role_configs), self.config)
        main = eng is self.engines["instructions"]
        # each engine reports progress under its own name; the run's engine as "requests"
        stage = self.stage if main else f"{self.stage}:{'+'.join(roles)}"
        d = Dispatcher(eng, config=config, cache=self.cache, progress=self.progress, stage=stage)
        self._dispatchers[id(eng)] = d
        share_budget(list(self._dispatchers.values()))
        return d

    def dispatchers(self) -> list[Dispatcher]:
        """A dispatcher per distinct engine of the run, the run's own engine first."""
        seen: dict[int, Dispatcher] = {}
        for role in ("instructions", *self.engines):
            eng = self.engine(role)
            if id(eng) not in seen:
                seen[id(eng)] = self.dispatcher(role)
        return list(seen.values())

    async def __aenter__(self) -> DispatchContext:
        self.dispatchers()  # every engine's, so that they share the budget from the start
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            for d in self._dispatchers.values():
                await d.aclose()
        finally:
            if self.cache is not None:
                self.cache.close()

    def stats(self) -> dict[str, Any]:
        """The request statistics for run.json: the sums over every engine of the run (what
        the summary and the run's totals count), and with more than one engine ``by_engine``:
        each engine's own figures (requests, tokens, cost) and the roles it answered."""
        per = [(d, d.stats.to_dict()) for d in self.dispatchers()]
        if len(per) == 1:
            return per[0][1]
        return {
            **sum_stats([s for _, s in per]),
            "by_engine": [
                {
                    "engine": d.engine.name,
                    "model": d.engine.model,
                    "roles": [r for r, e in self.engines.items() if e is d.engine],
                    **s,
                }
                for d, s in per
            ],
        }

    # -- requests -------------------------------------------------------------------------------

    async def complete(
        self,
        request: Request,
        *,
        role: str = "instructions",
        sample: int = 0,
        batchable: bool = False,
    ) -> Completion | EngineError:
        try:
            return await self.dispatcher(role).complete(request, sample=sample, batchable=batchable)
        except AuthenticationError:
            raise  # a wrong key fails every request: stop at once
        except EngineError as exc:
            return exc

    async def complete_many(
        self,
        requests: Sequence[Request],
        *,
        role: str = "instructions",
        batchable: bool = True,
    ) -> list[Completion | EngineError]:
        d = self.dispatcher(role)
        d.expect(len(requests))
        return await gather_values(d.complete(r, batchable=batchable) for r in requests)

    def expect(self, n: int, role: str = "instructions") -> None:
        self.dispatcher(role).expect(n)

    async def sliding_window(
        self,
        build: Callable[[int, int], Request],
        consume: Callable[[int, Completion | EngineError], Awaitable[int]],
        *,
        target: int,
        window: int = 64,
        prior_yield: float = 4.0,
        max_stalled: int = 25,
        role: str = "instructions",
        batchable: bool = False,
        independent: bool = False,
    ) -> WindowStats:
        plan = BootstrapWindow(target, window, max_stalled, prior_yield=prior_yield)
        pending: dict[int, asyncio.Task[Completion | EngineError]] = {}
        received = 0

        def may_issue() -> bool:
            if not independent:
                return plan.may_issue()
            # Prompts that show no earlier output: a request may go out as soon as an answer
            # arrives, before the answers ahead of it are consumed (filters run in order, and
            # a slow filter must not hold the requests back).
            if plan.kept >= target or plan.gave_up() or plan.issued - received >= window:
                return False
            return plan.kept + plan.expected_yield() * plan.in_flight < target

        def arrived(_: object) -> None:
            nonlocal received
            received += 1
            if independent and not stopping:
                issue()

        def issue() -> None:
            n = 0
            while may_issue():
                if independent:
                    index, pool = plan.issued, 0
                    plan.issued += 1
                else:
                    index, pool = plan.issue()
                request = build(index, pool)
                task = asyncio.ensure_future(
                    self.complete(request, role=role, sample=index, batchable=batchable)
                )
                task.add_done_callback(arrived)
                pending[index] = task
                n += 1
            if n:
                self.expect(n, role)

        stopping = False
        try:
            issue()
            while plan.in_flight:
                result = await pending.pop(plan.processed)
                added = await consume(plan.processed, result)
                plan.record(added, failed=isinstance(result, EngineError))
                if plan.kept >= target or plan.all_failed():
                    break  # exact count; what is still in flight is cancelled
                issue()
        finally:
            stopping = True
            for t in pending.values():
                t.cancel()
            if pending:
                await asyncio.gather(*pending.values(), return_exceptions=True)
        return WindowStats(plan.issued, plan.processed, plan.kept, plan.failed, plan.gave_up())

    # -- filters and progress -------------------------------------------------------------------

    def prime(self, kept: Sequence[str]) -> None:
        # Applied in the filters' worker thread before the next candidates are checked:
        # indexing thousands of kept instructions must not hold the event loop.
        self._primes.append(list(kept))

    def _apply_primes(self) -> None:
        while self._primes:
            kept = self._primes.pop(0)
            for f in self.filters:
                f.prime(kept)

    async def accept(
        self, candidates: Sequence[str], room: int, *, stage: str = "instructions"
    ) -> list[str]:
        kept, seconds = await asyncio.to_thread(self._accept, list(candidates), room)
        self.filter_s += seconds
        return kept

    def _accept(self, candidates: list[str], room: int) -> tuple[list[str], float]:
        started = time.perf_counter()
        self._apply_primes()
        kept: list[str] = []
        for item in candidates:
            if len(kept) >= room:
                break
            reason = None
            for f in self.filters:
                reason = f.check(item)
                if reason is not None:
                    self.drops[f.name] += 1
                    if len(self.drop_examples[f.name]) < 5:
                        self.drop_examples[f.name].append(f"{item[:100]} ({reason})")
                    break
            if reason is None:
                for f in self.filters:
                    f.keep(item)
                kept.append(item)
        return kept, time.perf_counter() - started

    def filter_report(self) -> dict[str, Any]:
        """The filters' section of run.json: names, drops per filter, a few examples."""
        return {
            "filters": [f.name for f in self.filters],
            "filter_drops": dict(self.drops),
            "filter_drop_examples": dict(self.drop_examples),
        }

    def tick(self, stage: str, done: int, total: int | None = None) -> None:
        emit(self.progress, ProgressEvent(stage=stage, done=done, total=total))

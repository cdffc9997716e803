"""The Self-Instruct pipeline: bootstrap → classify → instances → prepare.

The bootstrap keeps a window of requests in flight (``selfinstruct.window``) and processes their
answers in request order; each instruction it keeps is classified and gets its instances at
once, while the bootstrap goes on, so the stages overlap instead of waiting for each other.

Every request goes through the dispatcher (so it is cached, rate-limited and retried). State is
never kept outside the per-request cache: a rerun replays the same seeded choices, finds its
answers in the cache and continues where the last run stopped. A different task file or
different parameters produce different prompts, so nothing stale is ever reused.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import instructgen.plugins as plugins
import instructgen.selfinstruct.prompts as prompts
from instructgen.dispatch import Dispatcher
from instructgen.engine_contract import Completion, Request
from instructgen.errors import AuthenticationError, ConfigError, EngineError
from instructgen.filter import Filter
from instructgen.progress import ProgressCallback, ProgressEvent, emit
from instructgen.selfinstruct.replies import InstanceReplies
from instructgen.selfinstruct.window import BootstrapWindow
from instructgen.tasks import SeedTask

log = logging.getLogger("instructgen.selfinstruct")

__all__ = ["GeneratedTask", "SelfInstructResult", "build_filters", "run_self_instruct"]


@dataclass
class GeneratedTask:
    instruction: str
    seed_task_ids: list[str]
    is_classification: bool = False
    instances: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class SelfInstructResult:
    rows: list[dict[str, Any]]
    report: dict[str, Any]


def build_filters(
    spec: Sequence[str | Filter] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Filter]:
    """Instruction filters: ``None`` = every registered default filter, in registration order."""
    reg = plugins.filters()
    options = options or {}
    if spec is None:
        names = [
            e.name
            for e in reg
            if e.meta.get("default", True) and e.meta.get("stage") == "instruction"
        ]
        return [reg.get(n)(**options.get(n, {})) for n in names]
    out: list[Filter] = []
    for item in spec:
        if isinstance(item, Filter):
            out.append(item)
        else:
            out.append(reg.get(item)(**options.get(item, {})))
    return out


async def run_self_instruct(
    tasks: Sequence[SeedTask],
    dispatcher: Dispatcher,
    *,
    num_instructions_for_finetuning: int = 5,
    num_instructions: int = 10,
    num_prompt_instructions: int = 8,
    num_machine_in_prompt: int = 2,
    window: int = 64,
    max_instances_per_task: int = 5,
    max_stalled_requests: int = 25,
    seed: int = 42,
    filters: Sequence[Filter] | None = None,
    progress: ProgressCallback | None = None,
    bootstrap_params: dict[str, Any] | None = None,
    classify_params: dict[str, Any] | None = None,
    instance_params: dict[str, Any] | None = None,
    source: str = "self-instruct",
    answers: Dispatcher | None = None,
) -> SelfInstructResult:
    """Self-Instruct over ``dispatcher``: exactly ``num_instructions_for_finetuning`` examples
    (or all there are) from at most ``num_instructions`` new instructions.

    ``window`` bootstrap requests stay in flight; request ``i`` lists instructions kept after
    results ``0 .. i - window`` were processed (``window=1`` is the paper's one-at-a-time loop).
    Each kept instruction is classified and gets its instances at once, while the bootstrap
    goes on. The dataset depends on the tasks, ``seed``, ``window`` and the parameters, never
    on the dispatcher's concurrency or timing. ``answers``: the dispatcher of another engine
    for the instance requests (inputs and outputs); the bootstrap and the classification stay
    on ``dispatcher``.
    """
    if not tasks:
        raise ConfigError("self-instruct needs at least one seed task")
    if num_instructions < 1 or num_instructions_for_finetuning < 1:
        raise ConfigError("num_instructions and num_instructions_for_finetuning must be >= 1")
    if num_prompt_instructions < 1:
        raise ConfigError("num_prompt_instructions must be >= 1")
    if window < 1:
        raise ConfigError(f"window must be at least 1, got {window}")
    run = _Run(
        tasks,
        dispatcher,
        num_instructions=num_instructions,
        num_prompt_instructions=num_prompt_instructions,
        num_machine_in_prompt=num_machine_in_prompt,
        window=window,
        max_stalled_requests=max_stalled_requests,
        seed=seed,
        filters=list(filters) if filters is not None else build_filters(),
        progress=progress,
        bootstrap_params=bootstrap_params or {},
        classify_params=classify_params or {},
        instance_params=instance_params or {},
        answers=answers,
    )
    machine = await run.run()
    plan = run.plan

    # -- prepare for fine-tuning ------------------------------------------------------------------
    prep_drops: Counter[str] = Counter()
    prepared: list[GeneratedTask] = []
    for m in machine:
        kept = _prepare_instances(m.instances, prep_drops, max_instances_per_task)
        if kept:
            prepared.append(
                GeneratedTask(m.instruction, m.seed_task_ids, m.is_classification, kept)
            )
        else:
            prep_drops["task without valid instances"] += 1
    rng = random.Random(f"{seed}:select")
    rows = _select_rows(
        prepared, num_instructions_for_finetuning, rng, answers or dispatcher, source
    )
    shortfall = None
    if len(rows) < num_instructions_for_finetuning:
        # Filter drops explain a shortfall only when the bootstrap fell short of its target.
        bootstrap_drops = run.drops if len(machine) < num_instructions else {}
        shortfall = shortfall_reason(run.failed_requests, _dropped(bootstrap_drops, prep_drops))
        log.warning(
            "the dataset has %d of the %d requested examples: %s",
            len(rows),
            num_instructions_for_finetuning,
            shortfall,
        )
    report = {
        "pipeline": "self-instruct",
        "seed_tasks": len(tasks),
        "requested": {
            "num_instructions_for_finetuning": num_instructions_for_finetuning,
            "num_instructions": num_instructions,
            "num_prompt_instructions": num_prompt_instructions,
            "window": window,
            "seed": seed,
        },
        "instructions_generated": len(machine),
        "classification_instructions": sum(m.is_classification for m in machine),
        "tasks_with_instances": len(prepared),
        "examples": len(rows),
        "bootstrap_requests": plan.issued,
        "bootstrap_requests_unused": plan.issued - plan.processed,
        "responses_cut_by_length": run.cut_by_length,
        "failed_requests": run.failed_requests,
        "unparsed_instance_replies": run.instance_replies.to_report(),
        "filter_drops": dict(run.drops),
        "filter_drop_examples": dict(run.drop_examples),
        "preparation_drops": dict(prep_drops),
        "shortfall_reason": shortfall,
        "timings": {
            **run.timings,
            "filters_s": round(run.filter_s, 3),
            "total_s": round(time.monotonic() - run.started, 3),
        },
    }
    return SelfInstructResult(rows, report)


_Pending = dict[int, tuple["asyncio.Task[Completion | EngineError]", list[str]]]


class _Run:
    """One run: the windowed bootstrap, and per kept instruction its classification and then
    its instance request, started as soon as the instruction is kept."""

    def __init__(
        self,
        tasks: Sequence[SeedTask],
        dispatcher: Dispatcher,
        *,
        num_instructions: int,
        num_prompt_instructions: int,
        num_machine_in_prompt: int,
        window: int,
        max_stalled_requests: int,
        seed: int,
        filters: list[Filter],
        progress: ProgressCallback | None,
        bootstrap_params: dict[str, Any],
        classify_params: dict[str, Any],
        instance_params: dict[str, Any],
        answers: Dispatcher | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.answers = answers or dispatcher
        self.chat = dispatcher.engine.kind == "chat"
        self.answers_chat = self.answers.engine.kind == "chat"
        self.target = num_instructions
        self.num_prompt_instructions = num_prompt_instructions
        self.num_machine_in_prompt = num_machine_in_prompt
        self.seed = seed
        self.filters = filters
        self.progress = progress
        self.bootstrap_params = bootstrap_params
        self.classify_params = classify_params
        self.instance_params = instance_params
        self.seed_instructions = [t.instruction for t in tasks]
        self.by_instruction = {t.instruction: t.id for t in tasks}
        self.plan = BootstrapWindow(num_instructions, window, max_stalled_requests)
        self.machine: list[GeneratedTask] = []
        self.drops: Counter[str] = Counter()
        self.drop_examples: dict[str, list[str]] = defaultdict(list)
        self.timings: dict[str, float] = {}
        self.cut_by_length = 0
        self.failed_requests = 0
        self.classified = 0
        self.with_instances = 0
        self.instance_replies = InstanceReplies()
        self.started = time.monotonic()
        self._followups: set[asyncio.Task[None]] = set()
        self._fatal: BaseException | None = None
        self._driver: asyncio.Task[Any] | None = None
        self._stopping = False  # the run is cleaning up: nothing may cancel it any more
        self.filter_s = 0.0

    # -- the run --------------------------------------------------------------------------------

    def _prime(self) -> None:
        for f in self.filters:
            f.prime(self.seed_instructions)

    async def run(self) -> list[GeneratedTask]:
        await asyncio.to_thread(self._prime)  # indexing the seeds must not hold the event loop
        self._driver = asyncio.current_task()
        pending: _Pending = {}
        try:
            try:
                await self._bootstrap(pending)
                self.timings["bootstrap_s"] = self._elapsed()
                while self._followups:
                    await asyncio.gather(*self._followups)
            except asyncio.CancelledError:
                if self._fatal is None:
                    raise
                # Cancelled by _followup_done to surface its error, not from outside.
                current = asyncio.current_task()
                if current is not None and hasattr(current, "uncancel"):  # Python >= 3.11
                    current.uncancel()
                raise self._fatal from None
        finally:
            # From here on a failing follow-up must not cancel this task: that would interrupt
            # the clean-up below and replace the run's error (the breaker's, the budget's) with
            # a bare CancelledError.
            self._stopping = True
            leftovers = [*(t for t, _ in pending.values()), *self._followups]
            for t in leftovers:
                t.cancel()
            if leftovers:
                await asyncio.gather(*leftovers, return_exceptions=True)
        if self._fatal is not None:
            raise self._fatal
        if len(self.machine) < self.target:
            plan = self.plan
            why = (
                f"all {plan.failed} bootstrap requests failed"
                if plan.failed == plan.processed
                else f"{plan.stalled} bootstrap answers in a row without a new one"
            )
            log.warning(
                "generated %d of %d requested instructions (%s); the dataset is built from "
                "what exists",
                len(self.machine),
                self.target,
                why,
            )
        return self.machine

    def _elapsed(self) -> float:
        return round(time.monotonic() - self.started, 3)

    # -- bootstrap ------------------------------------------------------------------------------

    def _bootstrap_request(self, index: int, pool_size: int) -> tuple[Request, list[str]]:
        """Request ``index``'s prompt: its own seeded choices from the first ``pool_size`` kept
        instructions and the seed tasks, so it never depends on when it is sent."""
        rng = random.Random(f"{self.seed}:bootstrap:{index}")
        picks = rng.sample(range(pool_size), min(self.num_machine_in_prompt, pool_size))
        from_machine = [self.machine[j] for j in picks]
        k = min(len(self.seed_instructions), self.num_prompt_instructions - len(from_machine))
        from_seed = rng.sample(self.seed_instructions, k)
        chosen = [m.instruction for m in from_machine] + from_seed
        rng.shuffle(chosen)
        return prompts.bootstrap_request(chosen, self.chat, **self.bootstrap_params), chosen

    def _issue(self, pending: _Pending) -> None:
        plan = self.plan
        n = 0
        while plan.may_issue():
            index, pool_size = plan.issue()
            request, chosen = self._bootstrap_request(index, pool_size)
            pending[index] = (asyncio.ensure_future(self._complete(request, index)), chosen)
            n += 1
        if n:
            self.dispatcher.expect(n)

    async def _bootstrap(self, pending: _Pending) -> None:
        plan = self.plan
        self._issue(pending)
        while plan.in_flight:
            task, chosen = pending.pop(plan.processed)
            result = await task
            added = 0
            if isinstance(result, EngineError):
                self.failed_requests += 1
            elif result.finish_reasons and result.finish_reasons[0] == "length":
                self.cut_by_length += 1
            else:
                candidates = prompts.parse_instructions(result.text, len(chosen) + 1)
                ids = sorted({self.by_instruction[c] for c in chosen if c in self.by_instruction})
                kept = await self._filter(candidates, self.target - len(self.machine))
                for inst in kept:
                    self._keep(GeneratedTask(inst, ids))
                added = len(kept)
            plan.record(added, failed=isinstance(result, EngineError))
            if len(self.machine) >= self.target or plan.all_failed():
                break  # exact count (or nothing works); what is still in flight is cancelled
            self._issue(pending)

    async def _filter(self, candidates: list[str], room: int) -> list[str]:
        """The candidates of one answer that every filter accepts, at most ``room`` of them.

        Filters compare each candidate with everything kept so far, so they run one answer at
        a time and in request order, in a worker thread: the event loop keeps sending and
        receiving meanwhile however slow a filter gets (a large pool, a slow plugin filter).
        Measured against running them on the loop in 20 ms slices, the thread gave the
        2,000-instruction benchmark more requests a second, not fewer.
        """
        kept, seconds = await asyncio.to_thread(self._filter_all, candidates, room)
        self.filter_s += seconds
        return kept

    def _filter_all(self, candidates: list[str], room: int) -> tuple[list[str], float]:
        """Kept candidates (at most ``room``) and the seconds the filters took."""
        started = time.perf_counter()
        kept: list[str] = []
        for inst in candidates:
            if len(kept) >= room:
                break  # exact count: never overshoot
            reason = None
            for f in self.filters:
                reason = f.check(inst)
                if reason is not None:
                    self.drops[f.name] += 1
                    if len(self.drop_examples[f.name]) < 5:
                        self.drop_examples[f.name].append(f"{inst[:100]} ({reason})")
                    break
            if reason is None:
                for f in self.filters:
                    f.keep(inst)
                kept.append(inst)
        return kept, time.perf_counter() - started

    # -- per kept instruction: classification, then instances --------------------------------------

    def _keep(self, task: GeneratedTask) -> None:
        self.machine.append(task)
        self.dispatcher.expect(1)
        self.answers.expect(1)
        follow = asyncio.ensure_future(self._follow(task))
        self._followups.add(follow)
        follow.add_done_callback(self._followup_done)
        self._tick("bootstrap", len(self.machine))

    def _followup_done(self, task: asyncio.Task[None]) -> None:
        self._followups.discard(task)  # a run of 52,000 instructions keeps only those pending
        if task.cancelled():
            return
        error = task.exception()
        if error is not None and self._fatal is None:
            # A wrong key or an exhausted budget ends the run at once, wherever it surfaced.
            self._fatal = error
            if self._driver is not None and not self._driver.done() and not self._stopping:
                self._driver.cancel()

    async def _follow(self, m: GeneratedTask) -> None:
        # Classification and instance requests build no later request: in batch mode they
        # may go through the engine's batch API.
        request = prompts.classify_request(m.instruction, self.chat, **self.classify_params)
        result = await self._complete(request, 0, batchable=True)
        if isinstance(result, Completion):
            m.is_classification = prompts.parse_classification(result.text)
        else:
            self.failed_requests += 1
        self.classified += 1
        self.timings["classify_s"] = self._elapsed()  # the stages overlap: when the last ended
        self._tick("classify", self.classified)
        request = prompts.instances_request(
            m.instruction, m.is_classification, self.answers_chat, **self.instance_params
        )
        result = await self._complete(request, 0, batchable=True, dispatcher=self.answers)
        if isinstance(result, Completion):
            m.instances = self.instance_replies.parse(result.text, m.is_classification)
        else:
            self.failed_requests += 1
        self.with_instances += 1
        self.timings["instances_s"] = self._elapsed()
        self._tick("instances", self.with_instances)

    async def _complete(
        self,
        request: Request,
        sample: int,
        *,
        batchable: bool = False,
        dispatcher: Dispatcher | None = None,
    ) -> Completion | EngineError:
        d = dispatcher or self.dispatcher
        try:
            return await d.complete(request, sample=sample, batchable=batchable)
        except AuthenticationError:
            raise  # a wrong key fails every request: stop at once
        except EngineError as exc:
            log.debug("request failed: %s", exc)  # the dispatcher logs failures, aggregated
            return exc

    def _tick(self, stage: str, done: int) -> None:
        # The stages overlap, so each reports its own count (the CLI shows them side by side).
        emit(self.progress, ProgressEvent(stage=stage, done=done, total=self.target))


def _dropped(filter_drops: Mapping[str, int], preparation_drops: Mapping[str, int]) -> int:
    """Instructions and instances the filters and preparation rules dropped (a task left
    without instances is a consequence of those, or of failed requests, not a drop)."""
    prep = {k: v for k, v in preparation_drops.items() if k != "task without valid instances"}
    return sum(filter_drops.values()) + sum(prep.values())


def shortfall_reason(failed_requests: int, dropped: int) -> str:
    """Why a dataset came out smaller than asked, for the warning and the CLI: failed requests
    first (rerunning retries them), filters only when they really dropped something."""
    reasons = []
    if failed_requests:
        reasons.append(
            f"{failed_requests} requests failed (their errors are in run.json); rerun the same "
            "command to retry them"
        )
    if dropped:
        reasons.append(
            f"filters and preparation dropped {dropped} instructions or instances; raise "
            "num_instructions to generate more"
        )
    if not reasons:
        reasons.append("the model gave too few usable instructions; raise num_instructions")
    return "; ".join(reasons)


def _prepare_instances(
    pairs: list[tuple[str, str]], drops: Counter[str], cap: int
) -> list[tuple[str, str]]:
    """The paper's preparation rules for one task's instances."""
    valid: list[tuple[str, str]] = []
    for inp, out in pairs:
        if not out.strip():
            drops["empty output"] += 1
        elif inp.strip() == out.strip():
            drops["input equals output"] += 1
        elif inp.rstrip().endswith(":") or out.rstrip().endswith(":"):
            drops["ends with a colon"] += 1
        else:
            valid.append((inp.strip(), out.strip()))
    outputs_by_input: dict[str, set[str]] = defaultdict(set)
    for inp, out in valid:
        outputs_by_input[inp].add(out)
    if any(len(outs) > 1 for outs in outputs_by_input.values()):
        drops["same input, different outputs"] += len(valid)
        return []
    unique = list(dict.fromkeys(valid))
    if len(unique) < len(valid):
        drops["duplicate"] += len(valid) - len(unique)
    if len(unique) > cap:
        drops["over the per-task cap"] += len(unique) - cap
    return unique[:cap]


def _select_rows(
    tasks: list[GeneratedTask], n: int, rng: random.Random, dispatcher: Dispatcher, source: str
) -> list[dict[str, Any]]:
    """Exactly ``n`` examples (or all there are): round-robin over tasks in a seeded order, so
    the dataset covers as many instructions as possible before taking a second instance."""
    order = list(range(len(tasks)))
    rng.shuffle(order)
    rows: list[dict[str, Any]] = []
    depth = 0
    engine = dispatcher.engine
    while len(rows) < n:
        added = False
        for i in order:
            t = tasks[i]
            if depth < len(t.instances) and len(rows) < n:
                inp, out = t.instances[depth]
                rows.append(
                    {
                        "instruction": t.instruction,
                        "text": inp,
                        "target": out,
                        "engine": engine.name,
                        "model": engine.model,
                        "seed_task_ids": list(t.seed_task_ids),
                        "is_classification": t.is_classification,
                        "source": source,
                    }
                )
                added = True
        if not added:
            break
        depth += 1
    return rows

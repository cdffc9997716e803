"""The Self-Instruct pipeline: bootstrap → classify → instances → prepare.

Every request goes through the dispatcher (so it is cached, rate-limited and retried). State is
never kept outside the per-request cache: a rerun replays the same seeded choices, finds its
answers in the cache and continues where the last run stopped. A different task file or
different parameters produce different prompts, so nothing stale is ever reused.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import instructgen.plugins as plugins
import instructgen.selfinstruct.prompts as prompts
from instructgen.dispatch import Dispatcher, gather_values
from instructgen.engine_contract import Completion, Request
from instructgen.errors import ConfigError, EngineError
from instructgen.filter import Filter
from instructgen.progress import ProgressCallback, ProgressEvent, emit
from instructgen.selfinstruct.replies import InstanceReplies
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
    spec: Sequence[str | Filter] | None = None, options: dict[str, dict[str, Any]] | None = None
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


class _Stage:
    def __init__(self, progress: ProgressCallback | None, name: str, total: int) -> None:
        self.progress, self.name, self.total, self.done = progress, name, total, 0

    def tick(self, n: int = 1, message: str | None = None) -> None:
        self.done += n
        emit(
            self.progress,
            ProgressEvent(stage=self.name, done=self.done, total=self.total, message=message),
        )


async def run_self_instruct(
    tasks: Sequence[SeedTask],
    dispatcher: Dispatcher,
    *,
    num_instructions_for_finetuning: int = 5,
    num_instructions: int = 10,
    num_prompt_instructions: int = 8,
    num_machine_in_prompt: int = 2,
    request_batch_size: int = 5,
    max_instances_per_task: int = 5,
    max_stalled_rounds: int = 5,
    seed: int = 42,
    filters: Sequence[Filter] | None = None,
    progress: ProgressCallback | None = None,
    bootstrap_params: dict[str, Any] | None = None,
    classify_params: dict[str, Any] | None = None,
    instance_params: dict[str, Any] | None = None,
    source: str = "self-instruct",
) -> SelfInstructResult:
    if not tasks:
        raise ConfigError("self-instruct needs at least one seed task")
    if num_instructions < 1 or num_instructions_for_finetuning < 1:
        raise ConfigError("num_instructions and num_instructions_for_finetuning must be >= 1")
    if num_prompt_instructions < 1:
        raise ConfigError("num_prompt_instructions must be >= 1")
    started = time.monotonic()
    rng = random.Random(seed)
    chat = dispatcher.engine.kind == "chat"
    filters = list(filters) if filters is not None else build_filters()
    seed_instructions = [t.instruction for t in tasks]
    by_instruction = {t.instruction: t.id for t in tasks}
    for f in filters:
        f.prime(seed_instructions)
    drops: Counter[str] = Counter()
    drop_examples: dict[str, list[str]] = defaultdict(list)
    timings: dict[str, float] = {}

    # -- 1. bootstrap new instructions --------------------------------------------------------
    machine: list[GeneratedTask] = []
    stage = _Stage(progress, "bootstrap", num_instructions)
    request_idx = 0
    stalled = 0
    cut_by_length = 0
    failed_requests = 0
    while len(machine) < num_instructions and stalled < max_stalled_rounds:
        batch = []
        for _ in range(request_batch_size):
            from_machine = rng.sample(machine, min(num_machine_in_prompt, len(machine)))
            k = min(len(seed_instructions), num_prompt_instructions - len(from_machine))
            from_seed = rng.sample(seed_instructions, k)
            chosen = [m.instruction for m in from_machine] + from_seed
            rng.shuffle(chosen)
            ids = sorted({by_instruction[c] for c in chosen if c in by_instruction})
            req = prompts.bootstrap_request(chosen, chat, **(bootstrap_params or {}))
            batch.append((req, chosen, ids, request_idx))
            request_idx += 1
        dispatcher.expect(len(batch))
        results = await _gather(dispatcher, [(r, idx) for r, _, _, idx in batch])
        before = len(machine)
        for (_, chosen, ids, _), result in zip(batch, results, strict=True):
            if isinstance(result, EngineError):
                failed_requests += 1
                continue
            if result.finish_reasons and result.finish_reasons[0] == "length":
                cut_by_length += 1
                continue
            for inst in prompts.parse_instructions(result.text, len(chosen) + 1):
                if len(machine) >= num_instructions:
                    break  # exact count: never overshoot
                reason = None
                for f in filters:
                    reason = f.check(inst)
                    if reason is not None:
                        drops[f.name] += 1
                        if len(drop_examples[f.name]) < 5:
                            drop_examples[f.name].append(f"{inst[:100]} ({reason})")
                        break
                if reason is not None:
                    continue
                for f in filters:
                    f.keep(inst)
                machine.append(GeneratedTask(inst, ids))
                stage.tick()
        stalled = stalled + 1 if len(machine) == before else 0
        if failed_requests and failed_requests == request_idx:
            break  # every request failed: nothing will change by asking again
    timings["bootstrap_s"] = round(time.monotonic() - started, 3)
    if len(machine) < num_instructions:
        log.warning(
            "generated %d of %d requested instructions (%d rounds without a new one); "
            "the dataset is built from what exists",
            len(machine),
            num_instructions,
            stalled,
        )

    # -- 2. classification or not -------------------------------------------------------------
    t0 = time.monotonic()
    stage = _Stage(progress, "classify", len(machine))
    cls_reqs = [
        (prompts.classify_request(m.instruction, chat, **(classify_params or {})), 0)
        for m in machine
    ]
    dispatcher.expect(len(cls_reqs))
    classified = await _gather(dispatcher, cls_reqs, batchable=True)
    for m, result in zip(machine, classified, strict=True):
        if isinstance(result, Completion):
            m.is_classification = prompts.parse_classification(result.text)
        else:
            failed_requests += 1
        stage.tick()
    timings["classify_s"] = round(time.monotonic() - t0, 3)

    # -- 3. instances ---------------------------------------------------------------------------
    t0 = time.monotonic()
    stage = _Stage(progress, "instances", len(machine))
    inst_reqs = [
        (
            prompts.instances_request(
                m.instruction, m.is_classification, chat, **(instance_params or {})
            ),
            0,
        )
        for m in machine
    ]
    dispatcher.expect(len(inst_reqs))
    instance_replies = InstanceReplies()
    instances = await _gather(dispatcher, inst_reqs, batchable=True)
    for m, result in zip(machine, instances, strict=True):
        if isinstance(result, Completion):
            m.instances = instance_replies.parse(result.text, m.is_classification)
        else:
            failed_requests += 1
        stage.tick()
    timings["instances_s"] = round(time.monotonic() - t0, 3)

    # -- 4. prepare for fine-tuning ---------------------------------------------------------------
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
    rows = _select_rows(prepared, num_instructions_for_finetuning, rng, dispatcher, source)
    shortfall = None
    if len(rows) < num_instructions_for_finetuning:
        shortfall = shortfall_reason(failed_requests, _dropped(drops, prep_drops))
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
            "seed": seed,
        },
        "instructions_generated": len(machine),
        "classification_instructions": sum(m.is_classification for m in machine),
        "tasks_with_instances": len(prepared),
        "examples": len(rows),
        "bootstrap_requests": request_idx,
        "responses_cut_by_length": cut_by_length,
        "failed_requests": failed_requests,
        "unparsed_instance_replies": instance_replies.to_report(),
        "filter_drops": dict(drops),
        "filter_drop_examples": dict(drop_examples),
        "preparation_drops": dict(prep_drops),
        "shortfall_reason": shortfall,
        "timings": {**timings, "total_s": round(time.monotonic() - started, 3)},
    }
    return SelfInstructResult(rows, report)


async def _gather(
    dispatcher: Dispatcher, items: Sequence[tuple[Request, int]], *, batchable: bool = False
) -> list[Completion | EngineError]:
    """``batchable``: no later request is built from these answers (the classification and
    instance requests), so in batch mode they may go through the engine's batch API."""
    if batchable:
        results = await gather_values(
            dispatcher.complete(r, sample=s, batchable=True) for r, s in items
        )
    else:
        results = await gather_values(dispatcher.complete(r, sample=s) for r, s in items)
    for result in results:
        if isinstance(result, EngineError):
            log.debug("request failed: %s", result)  # the dispatcher logs failures, aggregated
    return results


def _dropped(filter_drops: dict[str, int], preparation_drops: dict[str, int]) -> int:
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

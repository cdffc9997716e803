"""Evol-Instruct rounds over a pool of instructions, through the dispatcher.

The pool starts as the seed instructions. Round ``r`` evolves every instruction of the pool
with one operation (``prompts.choose_evolution``, seeded by (seed, r, index)); the evolved
instruction gets an answer and the equality check, and the elimination step decides: a kept
evolution becomes a row and replaces its parent in the pool, a failed one returns its parent
to the pool for the next round.

Each pool position is a chain (round 1, 2, … of the same position) independent of the others,
so there is no barrier between rounds: evolutions are numbered ``k = (r - 1) * pool + index``,
up to ``window`` of them are in flight, and their outcomes are recorded strictly in that order.
Evolution ``k`` is sent only once ``k - pool`` (its parent's) is recorded. The rows are the
first ``target`` kept evolutions in that order, and every request is a function of the seeds,
the seed and the options (its sample index is ``k``), never of timing, concurrency or
retries: a rerun, or a resume after kill -9, finds every finished request in the cache and
writes the same dataset byte for byte.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from instructgen import (
    Completion,
    ConfigError,
    EngineError,
    MethodContext,
    MethodOptions,
    Request,
)
from instructgen_evol import elimination, prompts, replies

__all__ = [
    "EvolOptions",
    "EvolResult",
    "Seed",
    "expected_evolutions",
    "parse_operations",
    "run_evol_instruct",
]

NO_PROMPT = "no prompt in the evolution reply"
CUT_BY_LENGTH = "evolution reply cut by max_tokens"
UNUSABLE = (NO_PROMPT, CUT_BY_LENGTH)

PRIOR_KEEP = 0.8
"""Share of evolutions expected to pass the elimination step before any is recorded; the
running share of the latest ``RECENT`` recorded ones replaces it as they come in."""
PRIOR_WEIGHT = 2.0
RECENT = 64
ALL_FAILED_AFTER = 5
EXAMPLES = 3


@dataclass(frozen=True)
class Seed:
    """One instruction of the initial pool. ``text`` is the instruction with its input, if
    it has one, on the lines after it (as the paper evolves Alpaca's instruction + input)."""

    id: str
    text: str


def parse_operations(spec: str) -> tuple[str, ...]:
    """``all``, ``depth`` (the five in-depth operations), ``breadth``, or a comma-separated list
    of operation names."""
    spec = spec.strip().lower()
    if spec == "all":
        return prompts.OPERATIONS
    if spec == "depth":
        return prompts.DEPTH_OPERATIONS
    if spec == "breadth":
        return (prompts.IN_BREADTH,)
    names = tuple(dict.fromkeys(p.strip() for p in spec.split(",") if p.strip()))
    unknown = [n for n in names if n not in prompts.OPERATIONS]
    if unknown or not names:
        raise ValueError(
            f"operations: unknown {', '.join(unknown) or '(none given)'}; use all, depth, "
            f"breadth or a comma-separated list of {', '.join(prompts.OPERATIONS)}"
        )
    return names


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class EvolOptions(MethodOptions):
    """The method's options (``-m KEY VALUE``)."""

    rounds: int = field(default=4, metadata=_help("rounds of evolution (the paper ran 4)"))
    operations: str = field(
        default="all",
        metadata=_help(
            "operations drawn from with equal probability: all, depth, breadth or a "
            "comma-separated list of " + ", ".join(prompts.OPERATIONS)
        ),
    )
    window: int = field(
        default=128,
        metadata=_help(
            "evolutions in flight at once (the dataset does not depend on it); in batch mode "
            "give at least the number of seeds, so each round's answers go in one batch"
        ),
    )
    evolution_max_tokens: int = field(default=1024, metadata=_help("max tokens of an evolution"))
    answer_max_tokens: int = field(default=2048, metadata=_help("max tokens of an answer"))
    equality_max_tokens: int = field(
        default=32, metadata=_help("max tokens of the equality check's verdict")
    )
    temperature: float = field(
        default=1.0, metadata=_help("sampling temperature of evolutions and answers")
    )
    top_p: float = field(default=0.95, metadata=_help("nucleus sampling of evolutions and answers"))

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError(f"rounds must be at least 1, got {self.rounds}")
        if self.window < 1:
            raise ValueError(f"window must be at least 1, got {self.window}")
        parse_operations(self.operations)
        for name in ("evolution_max_tokens", "answer_max_tokens", "equality_max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.temperature <= 2:
            raise ValueError(f"temperature must be between 0 and 2, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def operation_list(self) -> tuple[str, ...]:
        return parse_operations(self.operations)


def expected_evolutions(pool: int, target: int, rounds: int, keep: float = PRIOR_KEEP) -> int:
    """Evolutions a run is expected to need for ``target`` rows (at most ``rounds * pool``)."""
    return min(rounds * pool, math.ceil(target / keep))


@dataclass
class EvolResult:
    rows: list[dict[str, Any]]
    report: dict[str, Any]


@dataclass
class _Parent:
    text: str
    seed_id: str
    round: int  # 0: a seed


@dataclass
class _Outcome:
    k: int
    evolution: prompts.Evolution
    instruction: str | None = None
    answer: str | None = None
    reason: str | None = None  # elimination reason (the paper's four)
    unusable: str | None = None  # no prompt in the reply, cut by length
    failed: bool = False  # a request failed after the dispatcher's retries
    equality_unclear: bool = False
    answer_cut: bool = False
    requests: Counter[str] = field(default_factory=Counter)

    @property
    def kept(self) -> bool:
        return not (self.failed or self.reason or self.unusable)


async def run_evol_instruct(
    seeds: Sequence[Seed],
    ctx: MethodContext,
    *,
    target: int,
    options: EvolOptions | None = None,
    seed: int = 42,
    source: str = "evol-instruct",
) -> EvolResult:
    """Exactly ``target`` evolved instructions with their answers (or all the rounds give).

    Evolutions go to the ``instructions`` engine, answers to ``answers``, equality checks to
    ``judge`` (each falls back to the ``instructions`` engine)."""
    options = options or EvolOptions()
    if not seeds:
        raise ConfigError("evol-instruct needs at least one seed instruction")
    if target < 1:
        raise ConfigError(f"evol-instruct: the number of examples must be >= 1, got {target}")
    run = _Run(seeds, ctx, target, options, seed, source)
    await run.run()
    return EvolResult(run.rows, run.report())


class _Run:
    def __init__(
        self,
        seeds: Sequence[Seed],
        ctx: MethodContext,
        target: int,
        options: EvolOptions,
        seed: int,
        source: str,
    ) -> None:
        self.seeds = list(seeds)
        self.ctx = ctx
        self.target = target
        self.options = options
        self.operations = options.operation_list
        self.seed = seed
        self.source = source
        self.pool_size = len(seeds)
        self.total = options.rounds * self.pool_size
        self.window = options.window
        self.pool = [_Parent(s.text, s.id, 0) for s in seeds]
        self.seed_texts = {_norm(s.text) for s in seeds}
        self.rows: list[dict[str, Any]] = []
        self.issued = 0
        self.processed = 0
        self.failed = 0
        self.tasks: dict[int, asyncio.Task[_Outcome]] = {}
        self.recent: deque[int] = deque(maxlen=RECENT)
        self.eliminations: Counter[str] = Counter({r: 0 for r in elimination.REASONS})
        self.unusable: Counter[str] = Counter({r: 0 for r in UNUSABLE})
        self.examples: dict[str, list[str]] = {}
        self.kept_by_round: Counter[int] = Counter()
        self.kept_by_operation: Counter[str] = Counter()
        self.tried_by_operation: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.equality_unclear = 0
        self.answers_cut = 0
        self.started = time.monotonic()

    # -- scheduling -----------------------------------------------------------------------------

    def expected_keep(self) -> float:
        return (PRIOR_KEEP * PRIOR_WEIGHT + sum(self.recent)) / (PRIOR_WEIGHT + len(self.recent))

    def gave_up(self) -> bool:
        return self.processed >= ALL_FAILED_AFTER and self.failed == self.processed

    def may_issue(self) -> bool:
        k = self.issued
        in_flight = k - self.processed
        if k >= self.total or len(self.rows) >= self.target or self.gave_up():
            return False
        if in_flight >= self.window or k - self.pool_size >= self.processed:
            return False  # the window is full, or the parent's evolution is not recorded yet
        return len(self.rows) + self.expected_keep() * in_flight < self.target

    async def run(self) -> None:
        try:
            while True:
                started = self.issued
                while self.may_issue():
                    k = self.issued
                    self.tasks[k] = asyncio.ensure_future(self._evolve(k))
                    self.issued += 1
                if self.issued > started:
                    # each evolution is expected to send its answer and equality check too
                    self.ctx.expect(3 * (self.issued - started))
                if self.processed == self.issued:
                    return
                outcome = await self.tasks.pop(self.processed)
                self._record(outcome)
                self.ctx.tick("evolutions kept", len(self.rows), self.target)
                if len(self.rows) >= self.target:
                    return
        finally:
            pending = list(self.tasks.values())
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            self.tasks.clear()

    # -- one evolution --------------------------------------------------------------------------

    async def _complete(
        self, request: Request, k: int, role: str, out: _Outcome, *, batchable: bool
    ) -> Completion | None:
        out.requests[role] += 1
        result = await self.ctx.complete(request, role=role, sample=k, batchable=batchable)
        if isinstance(result, EngineError):
            out.failed = True
            return None
        return result

    async def _evolve(self, k: int) -> _Outcome:
        round_no, index = divmod(k, self.pool_size)
        round_no += 1
        parent = self.pool[index]
        o = self.options
        evolution = prompts.choose_evolution(self.seed, round_no, index, self.operations)
        out = _Outcome(k, evolution)
        request = prompts.evolution_request(
            evolution,
            parent.text,
            max_tokens=o.evolution_max_tokens,
            temperature=o.temperature,
            top_p=o.top_p,
        )
        # The next round's evolution of this instruction is built from this reply: online.
        reply = await self._complete(request, k, "instructions", out, batchable=False)
        if reply is None:
            return out
        if reply.finish_reasons and reply.finish_reasons[0] == "length":
            out.unusable = CUT_BY_LENGTH
            return out
        evolved = replies.parse_evolved(reply.text)
        if evolved is None:
            out.unusable = NO_PROMPT
            return out
        out.instruction = evolved
        if elimination.copies_template(evolved):
            out.reason = elimination.COPIED_TEMPLATE
            return out
        if _norm(evolved) == _norm(parent.text) or _norm(evolved) in self.seed_texts:
            # The prompt came back unchanged: equal without asking.
            out.reason = elimination.NO_INFORMATION_GAIN
            return out
        judge = prompts.equality_request(parent.text, evolved, max_tokens=o.equality_max_tokens)
        ask = prompts.answer_request(
            evolved, max_tokens=o.answer_max_tokens, temperature=o.temperature, top_p=o.top_p
        )
        # No request is built from an answer or a verdict: both may go through a batch API.
        verdict, answer = await asyncio.gather(
            self._complete(judge, k, "judge", out, batchable=True),
            self._complete(ask, k, "answers", out, batchable=True),
        )
        if verdict is None or answer is None:
            return out
        equal = replies.parse_equality(verdict.text)
        out.equality_unclear = equal is None
        out.answer = replies.clean_reply(answer.text)
        out.answer_cut = bool(answer.finish_reasons) and answer.finish_reasons[0] == "length"
        if equal:
            out.reason = elimination.NO_INFORMATION_GAIN
        else:
            out.reason = elimination.answer_elimination(out.answer)
        return out

    # -- recording, strictly in order -----------------------------------------------------------

    def _record(self, out: _Outcome) -> None:
        self.processed += 1
        self.requests.update(out.requests)
        round_no, index = divmod(out.k, self.pool_size)
        round_no += 1
        op = out.evolution.operation
        self.tried_by_operation[op] += 1
        self.recent.append(int(out.kept))
        if out.failed:
            self.failed += 1
            return
        self.equality_unclear += out.equality_unclear
        if out.unusable:
            self.unusable[out.unusable] += 1
            return
        if out.reason:
            self.eliminations[out.reason] += 1
            shown = self.examples.setdefault(out.reason, [])
            if len(shown) < EXAMPLES:
                text = out.instruction or ""
                if out.reason in (elimination.ANSWER_REFUSAL, elimination.ANSWER_ONLY_STOP_WORDS):
                    text = out.answer or ""
                shown.append(text[:200])
            return
        assert out.instruction is not None and out.answer is not None
        parent = self.pool[index]
        self.pool[index] = _Parent(out.instruction, parent.seed_id, round_no)
        self.answers_cut += out.answer_cut
        self.kept_by_round[round_no] += 1
        self.kept_by_operation[op] += 1
        engine = self.ctx.engine("answers")
        self.rows.append(
            {
                "instruction": out.instruction,
                "text": "",
                "target": out.answer,
                "engine": engine.name,
                "model": engine.model,
                "seed_task_ids": [parent.seed_id],
                "is_classification": False,
                "source": f"{self.source}:round-{round_no}:{op}",
            }
        )

    def report(self) -> dict[str, Any]:
        shortfall = None
        if len(self.rows) < self.target:
            if self.gave_up():
                shortfall = f"every one of the {self.failed} evolutions' requests failed"
            else:
                shortfall = (
                    f"{self.options.rounds} rounds over {self.pool_size} seed instructions kept "
                    f"{len(self.rows)} evolutions; raise rounds or give more seeds"
                )
        return {
            "pipeline": "evol-instruct",
            "seed_instructions": self.pool_size,
            "requested": {"examples": self.target, "seed": self.seed},
            "examples": len(self.rows),
            "evolutions_sent": self.issued,
            "evolutions_recorded": self.processed,
            "evolutions_unused": self.issued - self.processed,
            "rounds_reached": (self.processed - 1) // self.pool_size + 1 if self.processed else 0,
            "kept_by_round": {str(r): n for r, n in sorted(self.kept_by_round.items())},
            "kept_by_operation": dict(sorted(self.kept_by_operation.items())),
            "evolutions_by_operation": dict(sorted(self.tried_by_operation.items())),
            "eliminations": dict(self.eliminations),
            "elimination_examples": self.examples,
            "unusable_evolutions": dict(self.unusable),
            "failed_evolutions": self.failed,
            "equality_unclear": self.equality_unclear,
            "answers_cut_by_length": self.answers_cut,
            "requests_by_role": dict(self.requests),
            # The paper's elimination step is this method's filter; Self-Instruct's
            # instruction filters (ROUGE-L novelty against the pool, ...) would drop
            # in-depth evolutions for resembling their parents.
            "filters": [],
            "filter_drops": {},
            "shortfall_reason": shortfall,
            "timings": {"total_s": round(time.monotonic() - self.started, 3)},
        }


def _norm(text: str) -> str:
    return " ".join(text.lower().split())

"""The ``alpaca`` generation method (Taori et al. 2023, Stanford Alpaca): one request asks for
20 instruction/input/output triples at once, shown 3 seed tasks; the replies are parsed and
filtered as ``generate_instruction.py`` does (length, blacklist, "Write a program", leading
character, ROUGE-L novelty 0.7 against everything kept). Far fewer requests per example than
Self-Instruct, which asks for instructions and instances separately.

Imports only the public API (``instructgen``)."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from instructgen import (
    Completion,
    ConfigError,
    EngineError,
    Method,
    MethodContext,
    MethodInput,
    MethodOptions,
    MethodRegistry,
    MethodResult,
    RequestEstimate,
    RunSize,
    hookimpl,
)
from instructgen_alpaca.prompts import AlpacaItem, parse_reply, request_for

__all__ = ["AlpacaMethod", "AlpacaOptions"]

BLACKLIST_EXTRA = ("video", "audio", "music", "flowchart", "diagram")
"""Alpaca's blacklist is Self-Instruct's plus these words."""


@dataclass(frozen=True)
class AlpacaOptions(MethodOptions):
    num_prompt_instructions: int = field(
        default=3, metadata={"help": "seed tasks shown in each prompt"}
    )
    window: int = field(
        default=64,
        metadata={"help": "requests in flight; answers are filtered in request order"},
    )
    expected_yield: float = field(
        default=12.0,
        metadata={"help": "kept tasks expected per reply, until replies say otherwise"},
    )
    max_stalled_requests: int = field(
        default=10, metadata={"help": "stop after this many replies in a row adding nothing"}
    )
    max_tokens: int = field(default=3072, metadata={"help": "completion tokens per request"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling"})

    def __post_init__(self) -> None:
        for name in ("num_prompt_instructions", "window", "max_stalled_requests", "max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.expected_yield <= 0:
            raise ValueError(f"expected_yield must be positive, got {self.expected_yield}")


def examples_of(source: MethodInput) -> list[tuple[str, AlpacaItem]]:
    """(id, example) for each seed: a task's first instance, or a saved dataset's row."""
    if source.kind == "tasks":
        out = []
        for t in source.tasks:
            first = t.instances[0] if t.instances else None
            item = AlpacaItem(
                t.instruction, first.input if first else "", first.output if first else ""
            )
            out.append((t.id, item))
        return out
    return [
        (
            f"row_{i}",
            AlpacaItem(
                str(r.get("instruction", "")), str(r.get("text", "")), str(r.get("target", ""))
            ),
        )
        for i, r in enumerate(source.rows)
    ]


class AlpacaMethod(Method):
    name = "alpaca"
    title = (
        "One request asks for 20 instruction/input/output triples, shown 3 seed tasks; "
        "filtered as Alpaca does (ROUGE-L 0.7, blacklist, length, punctuation)"
    )
    paper = (
        "Taori et al. 2023, Stanford Alpaca: An Instruction-following LLaMA model "
        "(tatsu-lab/stanford_alpaca)"
    )
    url = "https://github.com/tatsu-lab/stanford_alpaca"
    inputs = ("tasks", "dataset")
    roles = ("instructions",)
    roles_note = (
        "no answers role: Alpaca writes each instruction's input and output in the same "
        "request as the instruction, so --response-engine does not apply"
    )
    Options = AlpacaOptions
    filter_options: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "blacklist": {"extra": BLACKLIST_EXTRA}
    }
    requests_per_example = 0.094  # measured: docs/benchmarks.md (methods_cost.py)

    def _request(
        self, examples: list[tuple[str, AlpacaItem]], index: int, chat: bool, seed: int
    ) -> tuple[Any, list[str]]:
        o = self.options
        rng = random.Random(f"{seed}:alpaca:{index}")
        picked = rng.sample(examples, min(o.num_prompt_instructions, len(examples)))
        request = request_for(
            [ex for _, ex in picked],
            chat,
            max_tokens=o.max_tokens,
            temperature=o.temperature,
            top_p=o.top_p,
        )
        return request, [i for i, _ in picked]

    def estimate(self, source: MethodInput, size: RunSize, *, chat: bool) -> list[RequestEstimate]:
        examples = examples_of(source)
        if not examples:
            raise ConfigError("alpaca needs at least one seed task")
        request, _ = self._request(examples, 0, chat, size.seed)
        expected = math.ceil(size.n / self.options.expected_yield)
        return [RequestEstimate("generate", request, expected, batchable=True, reply_tokens=1100)]

    async def run(self, source: MethodInput, ctx: MethodContext) -> MethodResult:
        examples = examples_of(source)
        if not examples:
            raise ConfigError("alpaca needs at least one seed task")
        n = ctx.size.n
        chat = ctx.engine("instructions").kind == "chat"
        ctx.prime([ex.instruction for _, ex in examples])
        rows: list[dict[str, Any]] = []
        shown: dict[int, list[str]] = {}
        counts: Counter[str] = Counter()

        def build(index: int, pool: int) -> Any:
            request, ids = self._request(examples, index, chat, ctx.size.seed)
            shown[index] = ids
            return request

        async def consume(index: int, answer: Completion | EngineError) -> int:
            ids = shown.pop(index)
            if isinstance(answer, EngineError):
                counts["failed_requests"] += 1
                return 0
            cut = bool(answer.finish_reasons) and answer.finish_reasons[0] == "length"
            counts["responses_cut_by_length"] += cut
            parsed = parse_reply(answer.text, len(ids) + 1, cut)
            counts["blocks_parsed"] += len(parsed.items)
            counts["blocks_unparsed"] += parsed.unparsed
            counts["blocks_dropped_cut"] += parsed.dropped_cut
            by_instruction: dict[str, AlpacaItem] = {}
            for item in parsed.items:
                by_instruction.setdefault(item.instruction, item)
            counts["duplicate_in_reply"] += len(parsed.items) - len(by_instruction)
            kept = await ctx.accept(list(by_instruction), n - len(rows))
            for text in kept:
                item = by_instruction[text]
                rows.append(
                    {
                        "instruction": item.instruction,
                        "text": item.input,
                        "target": item.output,
                        "seed_task_ids": sorted(ids),
                        "source": "alpaca",
                    }
                )
            ctx.tick("generate", len(rows), n)
            return len(kept)

        o = self.options
        stats = await ctx.sliding_window(
            build,
            consume,
            target=n,
            window=o.window,
            prior_yield=o.expected_yield,
            max_stalled=o.max_stalled_requests,
            batchable=True,  # a prompt shows seed tasks only: no request waits on another
            independent=True,
        )
        report: dict[str, Any] = {
            "seed_tasks": len(examples),
            "requests_issued": stats.issued,
            "requests_used": stats.processed,
            "requests_unused": stats.issued - stats.processed,
            "gave_up": stats.gave_up,
            **{
                k: counts[k]
                for k in (
                    "failed_requests",
                    "responses_cut_by_length",
                    "blocks_parsed",
                    "blocks_unparsed",
                    "blocks_dropped_cut",
                    "duplicate_in_reply",
                )
            },
        }
        if len(rows) < n:
            report["shortfall_reason"] = (
                f"{stats.failed} requests failed; rerun to retry them"
                if stats.failed
                else "the replies gave too few usable tasks (see filter_drops)"
            )
        return MethodResult(rows, report)


@hookimpl
def register_methods(registry: MethodRegistry) -> None:
    registry.add(AlpacaMethod)

"""Self-Instruct (Wang et al., 2022) as a method: ``selfinstruct.pipeline.run_self_instruct`` on
the context's dispatcher, with the run's filters. Registered as the core's built-in method
``self-instruct`` (``plugins.register_builtin``), the default of ``generate``."""

from __future__ import annotations

from typing import Any

import instructgen.plugins as plugins
from instructgen.errors import ConfigError
from instructgen.limits import check_dataset_size
from instructgen.method import (
    Method,
    MethodContext,
    MethodInput,
    MethodOptions,
    MethodResult,
    RequestEstimate,
    RunSize,
)
from instructgen.methods.context import DispatchContext
from instructgen.selfinstruct import prompts
from instructgen.selfinstruct.estimate import expected_requests
from instructgen.selfinstruct.options import SelfInstructOptions
from instructgen.selfinstruct.pipeline import run_self_instruct
from instructgen.tasks import Instance, SeedTask

__all__ = ["SelfInstructMethod", "seed_tasks_of"]


def seed_tasks_of(source: MethodInput) -> list[SeedTask]:
    """The input as seed tasks: the tasks themselves, a saved dataset's rows (instruction,
    input, output), or bare instructions."""
    if source.kind == "tasks":
        return list(source.tasks)
    if source.kind == "dataset":
        return [
            SeedTask(
                id=f"row_{i}",
                instruction=str(r.get("instruction", "")),
                instances=(Instance(str(r.get("text", "")), str(r.get("target", ""))),),
                is_classification=bool(r.get("is_classification", False)),
            )
            for i, r in enumerate(source.rows)
        ]
    return [
        SeedTask(id=f"instruction_{i}", instruction=text, instances=())
        for i, text in enumerate(source.seed_instructions)
    ]


class SelfInstructMethod(Method):
    name = "self-instruct"
    title = (
        "Bootstrap new instructions from seed tasks (8 listed per prompt), classify each, "
        "generate its instances, filter (ROUGE-L 0.7 novelty, length, blacklist)"
    )
    paper = (
        "Wang et al. 2022, Self-Instruct: Aligning Language Models with Self-Generated "
        "Instructions (arXiv:2212.10560)"
    )
    url = "https://arxiv.org/abs/2212.10560"
    inputs = ("tasks", "dataset", "instructions")
    roles = ("instructions", "answers")
    roles_note = (
        "answers: the instance requests (inputs and outputs); the bootstrap and the "
        "classification stay on the run's engine"
    )
    Options = SelfInstructOptions
    requests_per_example = 1.08  # measured: docs/benchmarks.md (methods_cost.py)

    def __init__(
        self,
        options: MethodOptions | dict[str, Any] | None = None,
        *,
        source: str = "self-instruct",
    ) -> None:
        super().__init__(options)
        self.source = source

    def check_size(self, size: RunSize) -> None:
        check_dataset_size(size.n, size.num_instructions, self.options.max_instances_per_task)

    def estimate(self, source: MethodInput, size: RunSize, *, chat: bool) -> list[RequestEstimate]:
        import random

        instructions = source.instructions()
        if not instructions:
            raise ConfigError("self-instruct needs at least one seed task")
        rng = random.Random(size.seed)
        k = min(len(instructions), self.options.num_prompt_instructions)
        first = rng.sample(instructions, k)
        typical = sorted(instructions, key=len)[len(instructions) // 2]
        n = size.num_instructions
        lengths = prompts.EXPECTED_COMPLETION_TOKENS
        return [
            RequestEstimate(
                "bootstrap",
                prompts.bootstrap_request(first, chat),
                expected_requests(n) - 2 * n,
                reply_tokens=lengths["bootstrap"],
            ),
            RequestEstimate(
                "classify",
                prompts.classify_request(typical, chat),
                n,
                upper=n,
                batchable=True,
                reply_tokens=lengths["classify"],
            ),
            RequestEstimate(
                "instances",
                prompts.instances_request(typical, False, chat),
                n,
                upper=n,
                role="answers",
                batchable=True,
                reply_tokens=lengths["instances"],
            ),
        ]

    async def run(self, source: MethodInput, ctx: MethodContext) -> MethodResult:
        if not isinstance(ctx, DispatchContext):
            raise TypeError("self-instruct runs on the core's DispatchContext")
        result = await run_self_instruct(
            seed_tasks_of(source),
            ctx.dispatcher("instructions"),
            answers=ctx.dispatcher("answers"),
            num_instructions_for_finetuning=ctx.size.n,
            num_instructions=ctx.size.num_instructions,
            seed=ctx.size.seed,
            filters=ctx.filters,
            progress=ctx.progress,
            source=self.source,
            **self.options.as_kwargs(),
        )
        return MethodResult(result.rows, result.report)


plugins.register_builtin("methods", SelfInstructMethod.name, SelfInstructMethod)

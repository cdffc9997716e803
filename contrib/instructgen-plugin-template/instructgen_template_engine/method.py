"""A generation method ("answer-instructions"), as a template for method authors: it reads a
JSONL of instructions (or a tasks file, or a saved dataset) and asks the ``answers`` engine for
one answer to each. Everything a method needs comes from ``instructgen``; every request goes
through the context, so the cache, resume after kill -9, retries, ``--max-cost``, batch mode
(``batchable=True``: no request waits on another) and progress come with it.

    instructgen generate questions.jsonl --method answer-instructions -m style detailed \\
        --engine openai -n 100
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from instructgen import (
    Completion,
    Method,
    MethodContext,
    MethodInput,
    MethodOptions,
    MethodRegistry,
    MethodResult,
    Request,
    RequestEstimate,
    RunSize,
    hookimpl,
)

__all__ = ["AnswerInstructions"]

STYLES = {
    "concise": "Answer the instruction below in at most three sentences.",
    "detailed": "Answer the instruction below thoroughly, step by step.",
}


@dataclass(frozen=True)
class AnswerOptions(MethodOptions):
    style: Literal["concise", "detailed"] = field(
        default="concise", metadata={"help": "how long the answers are"}
    )
    max_tokens: int = field(default=400, metadata={"help": "completion tokens per answer"})

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}")


class AnswerInstructions(Method):
    name = "answer-instructions"
    title = "One answer per given instruction, from the answers engine"
    paper = "none (a template)"
    url = "https://example.org/instructgen-plugin-template"
    inputs = ("instructions", "tasks", "dataset")
    roles = ("answers",)
    Options = AnswerOptions
    requests_per_example = 1.0

    def request(self, instruction: str) -> Request:
        prompt = f"{STYLES[self.options.style]}\n\nInstruction: {instruction}\nAnswer:"
        return Request(prompt=prompt, max_tokens=self.options.max_tokens, temperature=0.0)

    def estimate(self, source: MethodInput, size: RunSize, *, chat: bool) -> list[RequestEstimate]:
        instructions = source.instructions()[: size.n]
        count = len(instructions)
        first = self.request(instructions[0] if instructions else "...")
        return [
            RequestEstimate("answers", first, count, upper=count, role="answers", batchable=True)
        ]

    async def run(self, source: MethodInput, ctx: MethodContext) -> MethodResult:
        instructions = source.instructions()[: ctx.size.n]
        answers = await ctx.complete_many(
            [self.request(i) for i in instructions], role="answers", batchable=True
        )
        rows = []
        failed = 0
        for instruction, answer in zip(instructions, answers, strict=True):
            if isinstance(answer, Completion) and answer.text.strip():
                rows.append({"instruction": instruction, "text": "", "target": answer.text.strip()})
            else:
                failed += 1  # an EngineError value, or an empty answer: counted, not fatal
        return MethodResult(rows, {"instructions": len(instructions), "unanswered": failed})


@hookimpl
def register_methods(registry: MethodRegistry) -> None:
    registry.add(AnswerInstructions)

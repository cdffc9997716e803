"""``evol-instruct``: the method the core runs (``instructgen generate TASKS --method
evol-instruct``), on the pure parts of this package."""

from __future__ import annotations

from typing import Any, ClassVar

from instructgen import (
    ConfigError,
    Method,
    MethodContext,
    MethodInput,
    MethodResult,
    RequestEstimate,
    RunSize,
)
from instructgen_evol import prompts
from instructgen_evol.evolution import (
    PRIOR_KEEP,
    EvolOptions,
    expected_evolutions,
    run_evol_instruct,
)
from instructgen_evol.seeds import seeds_of

__all__ = ["EXPECTED_REPLY_TOKENS", "EvolInstruct"]

EXPECTED_REPLY_TOKENS = {"evolve": 80, "judge": 3, "answer": 400}
"""Typical completion tokens: an evolved prompt is its parent plus 10 to 20 words (about 60-100
tokens for Alpaca-sized seeds); a verdict is "Not Equal"; an answer to an evolved instruction
is a few paragraphs."""


class EvolInstruct(Method):
    name = "evol-instruct"
    title = (
        "Rounds of in-depth (constraints, deepening, concretizing, reasoning steps, complicated "
        "input) and in-breadth evolution of seed instructions, the paper's elimination step, "
        "answers for the evolved instructions"
    )
    paper = (
        "Xu et al. 2023, WizardLM: Empowering Large Language Models to Follow Complex "
        "Instructions (arXiv:2304.12244)"
    )
    url = "https://arxiv.org/abs/2304.12244"
    inputs = ("tasks", "dataset", "instructions")
    roles = ("instructions", "answers", "judge")
    roles_note = (
        "instructions: the evolutions; answers: the answers to evolved instructions "
        "(--response-engine); judge: the elimination's equality verdicts (--judge-engine)"
    )
    Options = EvolOptions
    requests_per_example: ClassVar[float | None] = 3.88
    """Measured: 3,877 requests per 1,000 kept rows (docs/benchmarks.md, Evol-Instruct)."""

    def check_size(self, size: RunSize) -> None:
        if size.n < 1:
            raise ConfigError(f"evol-instruct: -n must be at least 1, got {size.n}")

    def estimate(self, source: MethodInput, size: RunSize, *, chat: bool) -> list[RequestEstimate]:
        seeds = seeds_of(source)
        if not seeds:
            raise ConfigError("evol-instruct needs at least one seed instruction")
        o: EvolOptions = self.options
        pool = len(seeds)
        upper = o.rounds * pool
        expected = expected_evolutions(pool, size.n, o.rounds)
        # The first evolution as it will be sent; a typical (median-length) seed for the
        # verdicts and answers. Prompts grow by 10 to 20 words a round, which this leaves out
        # (about 20 tokens on prompts of 250 to 400).
        first = seeds[0].text
        typical = sorted((s.text for s in seeds), key=len)[pool // 2]
        evolution = prompts.choose_evolution(size.seed, 1, 0, o.operation_list)
        shared: dict[str, Any] = {"temperature": o.temperature, "top_p": o.top_p}
        # Answers and verdicts are sent for evolutions that parsed and copy no template words.
        checked = round(expected * (PRIOR_KEEP + 1) / 2, 1)
        return [
            RequestEstimate(
                "evolve",
                prompts.evolution_request(
                    evolution, first, max_tokens=o.evolution_max_tokens, **shared
                ),
                expected,
                upper=upper,
                role="instructions",
                reply_tokens=EXPECTED_REPLY_TOKENS["evolve"],
            ),
            RequestEstimate(
                "judge",
                prompts.equality_request(typical, typical, max_tokens=o.equality_max_tokens),
                checked,
                upper=upper,
                role="judge",
                batchable=True,
                reply_tokens=EXPECTED_REPLY_TOKENS["judge"],
            ),
            RequestEstimate(
                "answer",
                prompts.answer_request(typical, max_tokens=o.answer_max_tokens, **shared),
                checked,
                upper=upper,
                role="answers",
                batchable=True,
                reply_tokens=EXPECTED_REPLY_TOKENS["answer"],
            ),
        ]

    async def run(self, source: MethodInput, ctx: MethodContext) -> MethodResult:
        seeds = seeds_of(source)
        result = await run_evol_instruct(
            seeds, ctx, target=ctx.size.n, options=self.options, seed=ctx.size.seed
        )
        return MethodResult(result.rows, result.report)

"""What a Self-Instruct run is expected to send and cost, before anything is sent: the figures
of ``generate --dry-run`` and of ``from-dir --self-instruct --dry-run``.

Two costs: an upper bound (prompts at 3 characters a token, every reply as long as
``max_tokens`` allows) and the expected cost (prompts counted with the engine's tokenizer where
one is on the machine, else about 4 characters a token; replies as long as the paper's data has
them, ``prompts.EXPECTED_COMPLETION_TOKENS``; classification tasks, whose instance prompt is
shorter, as common as among the seed tasks).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from instructgen.dispatch import estimate
from instructgen.engine_contract import Engine, Request, Usage
from instructgen.money import format_usd
from instructgen.selfinstruct import prompts
from instructgen.selfinstruct.window import PRIOR_YIELD
from instructgen.tokens import expected_prompt_tokens

__all__ = ["SelfInstructEstimate", "estimate_self_instruct", "expected_requests"]


def expected_requests(num_instructions: int) -> int:
    """Requests a run is expected to send: bootstrap requests while the expected yield
    (PRIOR_YIELD kept instructions a request) does not cover the target, then one
    classification and one instance request per instruction."""
    return math.ceil(num_instructions / PRIOR_YIELD) + 2 * num_instructions


@dataclass
class SelfInstructEstimate:
    bootstrap: Request
    classify: Request
    instances: Request
    n_bootstrap: int
    num_instructions: int
    prompt_tokens: int
    max_completion_tokens: int
    max_cost: float | None
    expected_prompt_tokens: int
    expected_completion_tokens: int
    expected_cost: float | None
    counted_with_tokenizer: bool

    @property
    def total_requests(self) -> int:
        return self.n_bootstrap + 2 * self.num_instructions

    def cost_text(self) -> str:
        """The expected cost and its bound, as the dry runs say them."""
        if self.max_cost is None or self.expected_cost is None:
            return "unknown (no price for this model)"
        return f"expected {format_usd(self.expected_cost)}, at most {format_usd(self.max_cost)}"

    def to_dict(self) -> dict[str, Any]:
        """The dry runs' JSON fields."""
        return {
            "requests": {
                "bootstrap": self.n_bootstrap,
                "classify": self.num_instructions,
                "instances": self.num_instructions,
                "total": self.total_requests,
            },
            "prompt_tokens": self.prompt_tokens,
            "max_completion_tokens": self.max_completion_tokens,
            "max_cost_usd": None if self.max_cost is None else round(self.max_cost, 4),
            "expected_prompt_tokens": self.expected_prompt_tokens,
            "prompt_tokens_counted": "with the model's tokenizer"
            if self.counted_with_tokenizer
            else "as 4 characters a token",
            "expected_completion_tokens": self.expected_completion_tokens,
            "expected_cost_usd": None
            if self.expected_cost is None
            else round(self.expected_cost, 6),
        }


def estimate_self_instruct(
    engine: type[Engine],
    model: str,
    instructions: Sequence[str],
    *,
    num_instructions: int,
    num_prompt_instructions: int,
    classification_share: float,
    seed: int,
    batch: bool = False,
) -> SelfInstructEstimate:
    """The estimate for ``num_instructions`` new instructions from seed ``instructions`` (their
    first bootstrap prompt as the run would build it; the follow-up prompts of the seed of
    median length). ``batch``: classification and instances at the batch price."""
    chat = engine.kind == "chat"
    rng = random.Random(seed)
    first = rng.sample(list(instructions), min(len(instructions), num_prompt_instructions))
    typical = sorted(instructions, key=len)[len(instructions) // 2]
    boot = prompts.bootstrap_request(first, chat)
    clf = prompts.classify_request(typical, chat)
    inst = prompts.instances_request(typical, False, chat)
    clf_inst = prompts.instances_request(typical, True, chat)
    n_boot = expected_requests(num_instructions) - 2 * num_instructions

    price = engine.model_price(model)
    bound = estimate([boot] * n_boot + [clf, inst] * num_instructions, price)
    follow_price = price
    max_cost = bound.cost
    if price is not None and batch:
        from instructgen.batching import batch_price

        follow_price = batch_price(price)
        max_cost = (estimate([boot] * n_boot, price).cost or 0.0) + (
            estimate([clf, inst] * num_instructions, follow_price).cost or 0.0
        )
    count = engine.token_counter(model)
    instance_prompt = classification_share * expected_prompt_tokens(clf_inst, count) + (
        1 - classification_share
    ) * expected_prompt_tokens(inst, count)
    lengths = prompts.EXPECTED_COMPLETION_TOKENS
    boot_usage = Usage(n_boot * expected_prompt_tokens(boot, count), n_boot * lengths["bootstrap"])
    follow_usage = Usage(
        round(num_instructions * (expected_prompt_tokens(clf, count) + instance_prompt)),
        num_instructions * (lengths["classify"] + lengths["instances"]),
    )
    expected_cost = (
        price.cost(boot_usage) + follow_price.cost(follow_usage)
        if price is not None and follow_price is not None
        else None
    )
    return SelfInstructEstimate(
        bootstrap=boot,
        classify=clf,
        instances=inst,
        n_bootstrap=n_boot,
        num_instructions=num_instructions,
        prompt_tokens=bound.prompt_tokens,
        max_completion_tokens=bound.completion_tokens,
        max_cost=max_cost,
        expected_prompt_tokens=boot_usage.prompt_tokens + follow_usage.prompt_tokens,
        expected_completion_tokens=boot_usage.completion_tokens + follow_usage.completion_tokens,
        expected_cost=expected_cost,
        counted_with_tokenizer=count is not None,
    )

"""The tuning knobs of a Self-Instruct run, as one typed value (defaults of the paper's code)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

__all__ = ["SelfInstructOptions"]


@dataclass(frozen=True)
class SelfInstructOptions:
    """``num_prompt_instructions`` instructions shown in each bootstrap prompt, of which up to
    ``num_machine_in_prompt`` generated ones; bootstrap prompts sent ``request_batch_size`` at a
    time; at most ``max_instances_per_task`` instances kept per instruction; the bootstrap stops
    after ``max_stalled_rounds`` rounds that added nothing. ``*_params``: request options
    (``max_tokens``, ``temperature``, ...) for each stage's prompts."""

    num_prompt_instructions: int = 8
    num_machine_in_prompt: int = 2
    request_batch_size: int = 5
    max_instances_per_task: int = 5
    max_stalled_rounds: int = 5
    bootstrap_params: dict[str, Any] | None = None
    classify_params: dict[str, Any] | None = None
    instance_params: dict[str, Any] | None = None

    def as_kwargs(self) -> dict[str, Any]:
        """The options as ``run_self_instruct`` keyword arguments."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

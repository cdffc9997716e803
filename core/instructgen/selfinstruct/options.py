"""The tuning knobs of a Self-Instruct run, as one typed value (defaults of the paper's code)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from instructgen.method import MethodOptions

__all__ = ["SelfInstructOptions"]


@dataclass(frozen=True)
class SelfInstructOptions(MethodOptions):
    """``num_prompt_instructions`` instructions shown in each bootstrap prompt, of which up to
    ``num_machine_in_prompt`` generated ones; ``window`` bootstrap requests in flight (request i
    lists instructions kept before answer i - window; part of what the dataset depends on, like
    the seed); at most ``max_instances_per_task`` instances kept per instruction; the bootstrap
    stops after ``max_stalled_requests`` answers in a row that added nothing. ``*_params``:
    request options (``max_tokens``, ``temperature``, ...) for each stage's prompts."""

    num_prompt_instructions: int = field(
        default=8, metadata={"help": "instructions listed in each bootstrap prompt"}
    )
    num_machine_in_prompt: int = field(
        default=2, metadata={"help": "of which at most this many generated ones"}
    )
    window: int = field(
        default=64,
        metadata={"help": "bootstrap requests in flight (the dataset depends on it)"},
    )
    max_instances_per_task: int = field(
        default=5, metadata={"help": "instances kept per instruction"}
    )
    max_stalled_requests: int = field(
        default=25, metadata={"help": "stop after this many answers in a row adding nothing"}
    )
    bootstrap_params: dict[str, Any] | None = field(
        default=None, metadata={"help": "request options of the bootstrap (Python API)"}
    )
    classify_params: dict[str, Any] | None = field(
        default=None, metadata={"help": "request options of the classification (Python API)"}
    )
    instance_params: dict[str, Any] | None = field(
        default=None, metadata={"help": "request options of the instances (Python API)"}
    )

    def as_kwargs(self) -> dict[str, Any]:
        """The options as ``run_self_instruct`` keyword arguments."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

"""Evol-Instruct (Xu et al. 2023, WizardLM) as an instructgen generation method: rounds of
in-depth and in-breadth evolution of seed instructions, the paper's elimination step, answers
for the evolved instructions. Imports only the public API ``instructgen``."""

from __future__ import annotations

from instructgen import MethodRegistry, hookimpl
from instructgen_evol.method import EvolInstruct

__all__ = ["EvolInstruct"]


@hookimpl
def register_methods(registry: MethodRegistry) -> None:
    registry.add(EvolInstruct)

"""Self-Instruct (Wang et al., 2022) on any engine: see ``pipeline.run_self_instruct``."""

from __future__ import annotations

from instructgen.selfinstruct.pipeline import (
    GeneratedTask,
    SelfInstructResult,
    build_filters,
    run_self_instruct,
)

__all__ = ["GeneratedTask", "SelfInstructResult", "build_filters", "run_self_instruct"]

"""Self-Instruct (Wang et al., 2022) on any engine: see ``pipeline.run_self_instruct``.

Names are resolved lazily, so importing ``selfinstruct.prompts`` does not import the pipeline.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY: dict[str, str] = {
    "GeneratedTask": "instructgen.selfinstruct.pipeline",
    "SelfInstructResult": "instructgen.selfinstruct.pipeline",
    "build_filters": "instructgen.selfinstruct.pipeline",
    "run_self_instruct": "instructgen.selfinstruct.pipeline",
    "SelfInstructOptions": "instructgen.selfinstruct.options",
}

__all__ = [
    "GeneratedTask",
    "SelfInstructOptions",
    "SelfInstructResult",
    "build_filters",
    "run_self_instruct",
]

if TYPE_CHECKING:
    from instructgen.selfinstruct.options import SelfInstructOptions
    from instructgen.selfinstruct.pipeline import (
        GeneratedTask,
        SelfInstructResult,
        build_filters,
        run_self_instruct,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'instructgen.selfinstruct' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

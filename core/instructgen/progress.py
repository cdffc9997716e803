"""The one progress channel: pipelines and the dispatcher report ``ProgressEvent``s to a callback.

The library never prints. The CLI renders events (a live line on a terminal, plain lines
otherwise); embedding tools pass their own callback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["ProgressCallback", "ProgressEvent", "emit"]


@dataclass(frozen=True)
class ProgressEvent:
    stage: str  # "bootstrap", "classify", "instances", "extract", "qa", "requests", ...
    done: int = 0
    total: int | None = None
    failed: int = 0
    retried: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    eta_s: float | None = None
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ProgressCallback = Callable[[ProgressEvent], None]


def emit(callback: ProgressCallback | None, event: ProgressEvent) -> None:
    if callback is not None:
        callback(event)

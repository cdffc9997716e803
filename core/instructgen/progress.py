"""The one progress channel: pipelines and the dispatcher report ``ProgressEvent``s to a callback.

The library never prints. The CLI renders events (a live line on a terminal, plain lines
otherwise); embedding tools pass their own callback.

Threads: callbacks run on the thread that runs the event loop of the run. With the async API
(``agenerate_*``) that is the caller's loop thread; with the synchronous API called from inside a
running loop (a notebook), the run gets a loop on a helper thread and callbacks run there. A
callback should return quickly; one that raises is logged once and detached, never fatal.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["ProgressCallback", "ProgressEvent", "emit"]

log = logging.getLogger(__name__)


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


_detached: weakref.WeakSet[Any] = weakref.WeakSet()
_detached_ids: set[int] = set()  # callables that cannot be weakly referenced


def emit(callback: ProgressCallback | None, event: ProgressEvent) -> None:
    """Hand ``event`` to ``callback``. A callback that raises is logged and detached: the run goes
    on without progress reports instead of failing because of its observer."""
    if callback is None or _is_detached(callback):
        return
    try:
        callback(event)
    except Exception as exc:  # an observer's bug must not end a paid-for run
        _detach(callback)
        log.warning(
            "the progress callback raised %s: %s; it is detached and gets no more events",
            type(exc).__name__,
            exc,
        )


def _is_detached(callback: ProgressCallback) -> bool:
    try:
        return callback in _detached
    except TypeError:
        return id(callback) in _detached_ids


def _detach(callback: ProgressCallback) -> None:
    try:
        _detached.add(callback)
    except TypeError:
        _detached_ids.add(id(callback))

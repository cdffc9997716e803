"""When to send the next bootstrap request, and which pool its prompt may use.

The sliding-window bootstrap keeps up to ``window`` requests in flight. Request ``i`` is built
from the instructions kept after results ``0 .. i - window`` were processed, and results are
processed strictly in request order, so every decision below is a pure function of the answers
in request order: never of timing, concurrency or retries. That is what makes a run
reproducible at any ``--concurrency`` and lets a rerun find every finished request in the cache.

Requests are sent only while the instructions kept plus the expected yield of the requests
still in flight stay below the target: a prior (``PRIOR_YIELD``) until answers arrive, then the
average of the most recent ones. Small targets therefore send a handful of requests, not a whole
window, and a run stops within a few requests of its exact count.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["PRIOR_YIELD", "BootstrapWindow"]

PRIOR_YIELD = 4.0
"""Instructions kept per bootstrap request before any answer is known: about 4 of the 5-7
instructions a reply continues the list with pass the paper's filters (measured on the 175 seed
tasks)."""

PRIOR_WEIGHT = 2.0
"""The prior counts as this many answers in the running average."""

RECENT = 64
"""The running average covers this many of the latest answers: the yield falls as the pool
grows (more near-duplicates), so old answers would overestimate it."""

ALL_FAILED_AFTER = 5
"""Stop sending when this many answers have come back and every one was a failure."""


@dataclass
class BootstrapWindow:
    """The bootstrap's bookkeeping; ``record`` one result at a time in request order."""

    target: int
    window: int = 64
    max_stalled: int = 25
    prior_yield: float = PRIOR_YIELD
    issued: int = 0
    processed: int = 0
    kept: int = 0
    failed: int = 0
    stalled: int = 0  # consecutive processed results that added no instruction
    _recent: deque[int] = field(default_factory=lambda: deque(maxlen=RECENT))
    _kept_after: list[int] = field(default_factory=lambda: [0])  # kept after p results

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be at least 1, got {self.window}")

    @property
    def in_flight(self) -> int:
        return self.issued - self.processed

    def expected_yield(self) -> float:
        """Instructions one more answer is expected to add."""
        return (self.prior_yield * PRIOR_WEIGHT + sum(self._recent)) / (
            PRIOR_WEIGHT + len(self._recent)
        )

    def all_failed(self) -> bool:
        """Every one of at least ``ALL_FAILED_AFTER`` answers was a failure: those still in
        flight are not worth waiting for."""
        return self.processed >= ALL_FAILED_AFTER and self.failed == self.processed

    def gave_up(self) -> bool:
        """No further request: too many answers in a row added nothing, or all failed."""
        return self.stalled >= self.max_stalled or self.all_failed()

    def may_issue(self) -> bool:
        if self.kept >= self.target or self.in_flight >= self.window or self.gave_up():
            return False
        return self.kept + self.expected_yield() * self.in_flight < self.target

    def issue(self) -> tuple[int, int]:
        """Reserve the next request: its index and how many kept instructions its prompt may
        draw from (those kept after results ``0 .. index - window`` were processed)."""
        i = self.issued
        self.issued += 1
        return i, self._kept_after[max(0, i - self.window + 1)]

    def record(self, added: int, *, failed: bool = False) -> None:
        """The next result in request order was processed and added ``added`` instructions."""
        self.processed += 1
        self.kept += added
        self.failed += failed
        self.stalled = 0 if added else self.stalled + 1
        self._recent.append(added)
        self._kept_after.append(self.kept)

    @property
    def finished(self) -> bool:
        """Nothing in flight and nothing more to send."""
        return self.in_flight == 0 and not self.may_issue()

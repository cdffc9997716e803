"""When a request that is taking far longer than its like is sent a second time.

A provider now and then holds a request much longer than the others of its kind: a gateway
that drops it after 30 s, a replica that stalls. With the default ``--timeout`` of 120 s such a
request costs its run up to two minutes, and when the run waits on it (the bootstrap processes
answers in request order; a stage ends with its slowest request) everything waits. A hedged
request ("The Tail at Scale", Dean and Barroso, CACM 2013; gRPC's ``hedgingPolicy``, proposal
A6) is a second copy of the same request sent once the first has taken longer than nearly all
requests of its kind: whichever answers first is used, the other is cancelled.

The policy here:

- Requests are grouped by kind: the same ``max_tokens``, and one prompt or several (a list,
  ``prompt_lists.py``, whatever its length: a server answers a list's prompts side by side),
  so a short classification is never judged by the time a long generation takes.
- The delay is ``hedge_after`` seconds when it is given, else 3 x the 95th percentile of the
  kind's last ``RECENT`` successful attempts, and never under ``HEDGE_FLOOR`` seconds. A kind
  with fewer than ``MIN_SAMPLES`` answers is compared with the last ``RECENT`` answers of every
  kind (a rare request held while the run waits on it adds no answers of its kind); with fewer
  than that in all there is nothing to compare with: an attempt sent then is looked at again
  every ``HEDGE_FLOOR`` seconds, so the first requests of a run are hedged too once the others
  have answered.
- One copy per attempt, and the copies of a run stay within ``HEDGE_SHARE`` of its attempts
  (plus ``HEDGE_SPARE``): a provider that is slow everywhere gets little extra load, and the
  copies cost at most that share more.
- The copy is a request like any other to the dispatcher's limits: it takes a slot under
  ``--concurrency`` (the next one free, ahead of requests queued for one: those wait on the
  late answer too, or on what it unblocks), the RPM and TPM allowance, and room under
  ``--max-cost``; without that room, or once the original has answered, it is not sent. No
  copy is sent while the server answers nothing (the circuit breaker's probing).

Cost: the copy's answer, when both arrive, is paid and counted; a copy or original cancelled
while the server works on it may still be billed by a provider, at most one request per
``hedges_sent``. ``hedge=False`` (``--hedge-after off``) sends every request once.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

__all__ = ["HEDGE_FLOOR", "HEDGE_SHARE", "HEDGE_SPARE", "HedgePolicy", "Latencies"]

HEDGE_FLOOR = 5.0
"""The shortest delay before a copy, in seconds: an answer within it is not late whatever the
others took (a loaded client or a cold connection can take a second or two)."""

MULTIPLIER = 3.0
"""The delay is this many times the 95th percentile of the kind's recent answers."""

PERCENTILE = 0.95
MIN_SAMPLES = 20
RECENT = 200

HEDGE_SHARE = 0.05
"""Copies stay within this share of the attempts sent, plus ``HEDGE_SPARE``: 2, then one more
per 20 attempts. (A provider holding 1 % of requests needs about 1.3 % of the attempts as
copies, measured with ``benchmarks/faults.py``: copies are held too, and so are retries.)"""

HEDGE_SPARE = 2


@dataclass
class Latencies:
    """The seconds the last ``RECENT`` successful attempts of one kind took, kept sorted."""

    _order: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))
    _sorted: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        if len(self._order) == RECENT:
            old = self._order[0]
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        self._order.append(seconds)
        bisect.insort(self._sorted, seconds)

    def __len__(self) -> int:
        return len(self._sorted)

    def percentile(self, share: float) -> float:
        """The value under which ``share`` of the samples lie (nearest rank)."""
        if not self._sorted:
            raise ValueError("no samples")
        rank = max(0, min(len(self._sorted) - 1, int(share * len(self._sorted) + 0.5) - 1))
        return self._sorted[rank]


class HedgePolicy:
    """The delay before a request of one kind gets a copy, and whether the run may send one.

    ``after``: a fixed delay in seconds (None: from the kind's latencies); ``enabled=False``
    never hedges; ``timeout``: the attempt's deadline (a delay at or past it is no hedge).
    """

    def __init__(
        self, *, enabled: bool = True, after: float | None = None, timeout: float = float("inf")
    ) -> None:
        self.enabled = enabled
        self.after = after
        self.timeout = timeout
        self._kinds: dict[tuple[int, int], Latencies] = {}
        self._all = Latencies()  # every kind's: the reference of a kind with few answers

    def record(self, kind: tuple[int, int], seconds: float) -> None:
        """A successful attempt of ``kind`` took ``seconds``."""
        if self.enabled:
            self._kinds.setdefault(kind, Latencies()).add(seconds)
            self._all.add(seconds)

    def delay(self, kind: tuple[int, int]) -> float | None:
        """Seconds after which an unanswered attempt of ``kind`` gets a copy, or None."""
        if not self.enabled:
            return None
        if self.after is not None:
            delay = self.after
        else:
            seen = self._kinds.get(kind)
            if seen is None or len(seen) < MIN_SAMPLES:
                seen = self._all  # a rare kind: compared with every answer of the run
            if len(seen) < MIN_SAMPLES:
                return None
            delay = max(HEDGE_FLOOR, MULTIPLIER * seen.percentile(PERCENTILE))
        return delay if delay < self.timeout else None

    @staticmethod
    def recheck() -> float:
        """Seconds after which an attempt whose kind had too few answers to tell is looked at
        again (answers may have come in meanwhile)."""
        return HEDGE_FLOOR

    @staticmethod
    def within_share(hedges: int, attempts: int) -> bool:
        """Another copy keeps the copies within ``HEDGE_SHARE`` of the ``attempts`` sent."""
        return hedges < HEDGE_SPARE + int(HEDGE_SHARE * attempts)

"""Judged filtering: a ``RowJudge`` rates finished rows through the run's ``judge`` engine.

``Judging.select(rows, need)`` goes through ``rows`` in order and keeps the first ``need`` rows
scored at least the judge's threshold, each with its ``judge_score``. It judges in rounds, each
as large as the rows still missing divided by the share kept so far (a bit more), so it rates
about as many rows as it needs, never all of them up front; the rows of a round are rated
concurrently and read in order, so what is kept depends only on the scores, never on timing.

Every rating is one request through the context (cached under its row's prompt: a rerun, or
``instructgen judge`` on the saved rows, sends nothing; batchable: in batch mode ratings go
through the engine's batch API). A reply that holds no score is asked again as another sample
(its own cache entry), up to the judge's ``attempts``; a row still without a score is
``unjudged`` and not kept. Scores are remembered by row, so a row met again in a later round
(the run generated more) is not rated twice.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from instructgen.engine_contract import Completion
from instructgen.errors import EngineError
from instructgen.filter import RowJudge
from instructgen.method import MethodContext

__all__ = ["PRIOR_PASS_RATE", "Judging", "row_key"]

PRIOR_PASS_RATE = 0.5
"""The share of rows a judge is expected to keep before it has rated any (AlpaGasus kept 18 %
of Alpaca at 4.5; generated rows from a good model pass 4 far more often). Only the size of the
first round depends on it, never what is kept."""


def row_key(row: Mapping[str, Any]) -> str:
    """What a rating depends on: the row's instruction, input and output."""
    return json.dumps(
        [str(row.get("instruction", "")), str(row.get("text", "")), str(row.get("target", ""))],
        ensure_ascii=False,
    )


class Judging:
    """One run's ratings: the scores by row, the counts and the histogram for run.json."""

    def __init__(self, judge: RowJudge, ctx: MethodContext) -> None:
        self.judge = judge
        self.ctx = ctx
        self.scores: dict[str, float | None] = {}
        self.requests = 0  # rating requests made (from the engine or the cache), retries too
        self.unreadable = 0  # replies that held no score (each asked again while attempts last)
        self.failed = 0  # rating requests that failed after the dispatcher's retries
        self.unjudged = 0  # rows left without a score: never kept
        self.rounds = 0

    # -- rating ---------------------------------------------------------------------------------

    async def rate(self, row: Mapping[str, Any]) -> float | None:
        """``row``'s score, or ``None`` when no reply held one (or the requests failed)."""
        key = row_key(row)
        if key in self.scores:
            return self.scores[key]
        chat = self.ctx.engine(self.judge.role).kind == "chat"
        score: float | None = None
        for attempt in range(self.judge.attempts):
            request = self.judge.request(row, chat=chat, attempt=attempt)
            self.requests += 1
            result = await self.ctx.complete(
                request, role=self.judge.role, sample=attempt, batchable=True
            )
            if isinstance(result, EngineError):
                self.failed += 1
                break  # the dispatcher retried it already; a rerun asks again
            score = self._read(result)
            if score is not None:
                break
            self.unreadable += 1
        if score is None:
            self.unjudged += 1
        self.scores[key] = score
        return score

    def _read(self, result: Completion) -> float | None:
        score = self.judge.read_score(result.text)
        low, high = self.judge.scale
        if score is None or not (low <= score <= high) or math.isnan(score):
            return None
        return float(score)

    # -- keeping --------------------------------------------------------------------------------

    def pass_rate(self) -> float:
        rated = [s for s in self.scores.values() if s is not None]
        if not rated:
            return PRIOR_PASS_RATE
        return sum(self.judge.keeps(s) for s in rated) / len(self.scores)

    async def select(self, rows: Sequence[dict[str, Any]], need: int) -> list[dict[str, Any]]:
        """The first ``need`` rows of ``rows`` the judge keeps (fewer when ``rows`` run out),
        each with its ``judge_score``."""
        kept: list[dict[str, Any]] = []
        i = 0
        while len(kept) < need and i < len(rows):
            missing = need - len(kept)
            size = math.ceil(missing / max(self.pass_rate(), 0.05) * 1.1)
            chunk = rows[i : i + max(1, size)]
            i += len(chunk)
            self.rounds += 1
            new = sum(row_key(r) not in self.scores for r in chunk)
            if new:
                self.ctx.expect(new, self.judge.role)
            scores = await asyncio.gather(*(self.rate(r) for r in chunk))
            for row, score in zip(chunk, scores, strict=True):
                if len(kept) >= need:
                    break
                if self.judge.keeps(score):
                    kept.append({**row, "judge_score": score})
            self.ctx.tick("judge", len(kept), need)
        return kept

    # -- the report -----------------------------------------------------------------------------

    def histogram(self) -> dict[str, int]:
        """Rows by score (halves kept, other fractions rounded to the nearest half), and
        ``unjudged``."""
        return histogram(self.scores.values())

    def report(self, kept: int, stats: Mapping[str, Any] | None = None) -> dict[str, Any]:
        rated = len(self.scores)
        eng = self.ctx.engine(self.judge.role)
        return {
            "filter": self.judge.name,
            "engine": eng.name,
            "model": eng.model,
            "scale": list(self.judge.scale),
            "threshold": self.judge.threshold,
            "attempts": self.judge.attempts,
            "rows_judged": rated,
            "rows_kept": kept,
            "rows_below_threshold": sum(
                1 for s in self.scores.values() if s is not None and not self.judge.keeps(s)
            ),
            "rows_unjudged": self.unjudged,
            "rating_requests": self.requests,
            "unreadable_replies": self.unreadable,
            "failed_requests": self.failed,
            "rounds": self.rounds,
            "histogram": self.histogram(),
            **({"requests": dict(stats)} if stats is not None else {}),
        }


def histogram(scores: Any) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for s in scores:
        if s is None:
            counts["unjudged"] += 1
        else:
            counts[f"{round(float(s) * 2) / 2:g}"] += 1
    order = sorted((k for k in counts if k != "unjudged"), key=float)
    out = {k: counts[k] for k in order}
    if counts["unjudged"]:
        out["unjudged"] = counts["unjudged"]
    return out

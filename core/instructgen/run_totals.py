"""A run's totals across invocations: what everything written to one output folder has paid.

A rerun of the same command resumes from the cache and pays only for what is missing, so its
own figures (``run.json`` ``requests``) can be zero while the run as a whole cost money.
``run.json`` ``totals`` keeps the sum over every invocation that finished in the folder:
requests paid (answered by the engine, not the cache), tokens, cost and time. Each new
invocation adds its figures to the totals of the ``run.json`` it replaces; a ``run.json`` from
before totals were kept counts as one invocation.

    report["totals"] = add_totals(report, read_run_json(out / "run.json"))
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "TOTAL_FIELDS",
    "add_totals",
    "dispatch_stats",
    "invocation_figures",
    "read_run_json",
]

log = logging.getLogger(__name__)

TOTAL_FIELDS = (
    "invocations",
    "requests_paid",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "elapsed_s",
)


def dispatch_stats(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The dispatcher statistics of one invocation: a directory run with Self-Instruct on top
    has two (the questions, then Self-Instruct)."""
    found = [report.get("requests"), (report.get("self_instruct") or {}).get("requests")]
    return [s for s in found if isinstance(s, Mapping)]


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def invocation_figures(report: Mapping[str, Any]) -> dict[str, Any]:
    """One invocation's figures in the totals' fields, from its run report."""
    stats = dispatch_stats(report)
    elapsed = _number((report.get("timings") or {}).get("total_s")) or max(
        (_number(s.get("elapsed_s")) for s in stats), default=0.0
    )
    return {
        "invocations": 1,
        "requests_paid": int(sum(_number(s.get("requests_completed")) for s in stats)),
        "prompt_tokens": int(sum(_number(s.get("prompt_tokens")) for s in stats)),
        "completion_tokens": int(sum(_number(s.get("completion_tokens")) for s in stats)),
        "cost_usd": round(sum(_number(s.get("cost_usd")) for s in stats), 6),
        "elapsed_s": round(elapsed, 3),
    }


def _previous_totals(previous: Mapping[str, Any]) -> dict[str, Any]:
    totals = previous.get("totals")
    if isinstance(totals, Mapping) and all(
        isinstance(totals.get(k), int | float) for k in TOTAL_FIELDS
    ):
        return {k: totals[k] for k in TOTAL_FIELDS}
    return invocation_figures(previous)  # written before totals were kept: one invocation


def add_totals(report: Mapping[str, Any], previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run's totals: ``previous`` (the run.json this invocation replaces; None for a new
    folder) plus this invocation's ``report``."""
    now = invocation_figures(report)
    if not previous:
        return now
    before = _previous_totals(previous)
    out = {k: before[k] + now[k] for k in TOTAL_FIELDS}
    out["cost_usd"] = round(out["cost_usd"], 6)
    out["elapsed_s"] = round(out["elapsed_s"], 3)
    for k in ("invocations", "requests_paid", "prompt_tokens", "completion_tokens"):
        out[k] = int(out[k])
    return out


def read_run_json(path: str | Path) -> dict[str, Any] | None:
    """The run report in ``path``, or None when there is none or it cannot be read (logged:
    the totals then start again from this invocation)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("%s cannot be read (%s): the run's totals start again from this run", path, exc)
        return None
    return data if isinstance(data, dict) else None

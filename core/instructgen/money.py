"""Money as people read it: ``format_usd(0.005)`` is ``$0.005``, not ``$0.01``."""

from __future__ import annotations

import math

__all__ = ["format_usd"]


def format_usd(amount: float) -> str:
    """Dollars with cents from $1 up, and two significant digits below a dollar, so small
    budgets and costs keep their value ($0.001, $0.0052, $0.25); trailing zeros past the
    cents are dropped."""
    if amount < 0:
        return "-" + format_usd(-amount)
    if amount == 0:
        return "$0.00"
    if amount >= 1:
        return f"${amount:,.2f}"
    decimals = max(2, 1 - math.floor(math.log10(amount)))
    text = f"{amount:.{decimals}f}"
    head, _, tail = text.partition(".")
    tail = tail[:2] + tail[2:].rstrip("0")
    return f"${head}.{tail}"

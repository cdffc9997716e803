"""Built-in instruction filters: ROUGE-L novelty, keyword blacklist, length, leading character,
"Write a program". Each reports why it dropped an item; the pipeline counts drops per filter."""

from __future__ import annotations

from instructgen import FilterRegistry, hookimpl
from instructgen_filters.rouge import RougeNoveltyFilter
from instructgen_filters.rules import (
    BlacklistFilter,
    LeadingCharFilter,
    LengthFilter,
    WriteAProgramFilter,
)

__all__ = [
    "BlacklistFilter",
    "LeadingCharFilter",
    "LengthFilter",
    "RougeNoveltyFilter",
    "WriteAProgramFilter",
]


@hookimpl
def register_filters(registry: FilterRegistry) -> None:
    # Cheap rules first, ROUGE last (the pipeline runs them in registration order).
    registry.add(LengthFilter)
    registry.add(BlacklistFilter)
    registry.add(WriteAProgramFilter)
    registry.add(LeadingCharFilter)
    registry.add(RougeNoveltyFilter, aliases=("rouge-l",))

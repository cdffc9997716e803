"""The filter contract: keep or drop a generated instruction, saying why.

Filters may be stateful (novelty against everything kept so far): the pipeline calls
``prime`` with what is already kept (the seed instructions), ``check`` for each candidate, and
``keep`` for each candidate that every filter accepted.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

__all__ = ["Filter"]


class Filter(ABC):
    name: ClassVar[str] = ""
    stage: ClassVar[Literal["instruction"]] = "instruction"
    """Filters judge generated instructions; that is the only stage a pipeline runs them at."""

    def __init__(self, **options: Any) -> None:
        self.options = options

    def prime(self, kept: Sequence[str]) -> None:  # noqa: B027 - optional, stateless default
        """Tell a stateful filter what is already in the dataset."""

    @abstractmethod
    def check(self, item: str) -> str | None:
        """``None`` to keep ``item``; otherwise a short reason for dropping it."""

    def keep(self, item: str) -> None:  # noqa: B027 - optional, stateless default
        """``item`` passed every filter and is now part of the dataset."""

"""The filter contracts: keep or drop a generated instruction, saying why (``Filter``), or
rate a finished row with a model (``RowJudge``).

Instruction filters may be stateful (novelty against everything kept so far): the pipeline
calls ``prime`` with what is already kept (the seed instructions), ``check`` for each
candidate, and ``keep`` for each candidate that every filter accepted.

A ``RowJudge`` (``stage = "row"``) runs after a method's run, on the rows the other filters
kept: the core sends each row's ``request`` to the run's ``judge`` engine (cached, batchable,
retried, within ``--max-cost``), reads the reply with ``read_score`` and keeps the rows scored
at least ``threshold``; a reply it cannot read is asked again (another sample) up to
``attempts`` times, never taken as a score.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from instructgen.engine_contract import Request

__all__ = ["Filter", "RowJudge"]


class Filter(ABC):
    name: ClassVar[str] = ""
    stage: ClassVar[Literal["instruction", "row"]] = "instruction"
    """``instruction``: judges generated instructions (``check``); ``row``: a ``RowJudge``,
    run on finished rows after the method."""

    def __init__(self, **options: Any) -> None:
        self.options = options

    def prime(self, kept: Sequence[str]) -> None:  # noqa: B027 - optional, stateless default
        """Tell a stateful filter what is already in the dataset."""

    @abstractmethod
    def check(self, item: str) -> str | None:
        """``None`` to keep ``item``; otherwise a short reason for dropping it."""

    def keep(self, item: str) -> None:  # noqa: B027 - optional, stateless default
        """``item`` passed every filter and is now part of the dataset."""


class RowJudge(Filter):
    """A filter that asks a model to rate each finished row (instruction, input, output).

    Subclasses say how to ask (``request``) and how to read the answer (``read_score``); the
    core does the rest. ``check`` accepts every instruction: a judge rates rows, not
    instructions."""

    stage: ClassVar[Literal["instruction", "row"]] = "row"
    role: ClassVar[str] = "judge"
    """The engine role the ratings are sent to (``--judge-engine``; default the run's)."""
    scale: ClassVar[tuple[float, float]] = (0.0, 5.0)
    """The lowest and highest score."""

    def __init__(self, *, threshold: float = 4.5, attempts: int = 3, **options: Any) -> None:
        super().__init__(threshold=threshold, attempts=attempts, **options)
        low, high = self.scale
        if not low <= float(threshold) <= high:
            raise ValueError(f"threshold {threshold} is outside the scale {low:g} to {high:g}")
        if int(attempts) < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        self.threshold = float(threshold)
        self.attempts = int(attempts)

    def check(self, item: str) -> str | None:
        return None

    @abstractmethod
    def request(self, row: Mapping[str, Any], *, chat: bool, attempt: int = 0) -> Request:
        """The request that rates ``row`` (``instruction``, ``text`` — the input —,
        ``target`` — the output); ``chat``: whether the judge engine takes messages;
        ``attempt``: 1, 2, ... when the replies so far held no score (say so in the prompt:
        the same prompt would often get the same reply)."""

    @abstractmethod
    def read_score(self, reply: str) -> float | None:
        """The score in ``reply``, within ``scale``; ``None`` when it holds none (the core
        then asks again)."""

    def keeps(self, score: float | None) -> bool:
        """Whether a row with ``score`` stays (an unjudged row, ``None``, does not)."""
        return score is not None and score >= self.threshold

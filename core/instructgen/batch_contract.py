"""The batch capability an engine may offer (``--batch``): the contract and its value types.

An engine offers batches by also subclassing ``BatchEngine``; the dispatcher's batch mode
(``batching.py``) does the collecting, recording, polling, resuming, retrying and accounting.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from instructgen.engine_contract import Completion, Price, Request
from instructgen.errors import EngineError

__all__ = [
    "BATCH_TOKEN_FIELD",
    "TERMINAL_STATES",
    "BatchEngine",
    "BatchStatus",
    "batch_price",
    "supports_batch",
]

BATCH_TOKEN_FIELD = "instructgen_submission"
"""The batch metadata field holding a submission's token (``abatch_lookup`` finds it)."""

TERMINAL_STATES = frozenset({"completed", "failed", "expired", "cancelled"})
"""States after which a batch changes no more (OpenAI's names; other engines map to them)."""


@dataclass(frozen=True)
class BatchStatus:
    """One look at a batch: its state (``validating``, ``in_progress``, ``finalizing``,
    ``completed``, ``failed``, ``expired``, ``cancelling``, ``cancelled``) and line counts."""

    id: str
    state: str
    total: int = 0
    completed: int = 0
    failed: int = 0

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES


class BatchEngine(ABC):
    """The batch capability of an engine (a mixin next to ``Engine``).

    ``items`` are ``(custom_id, Request)`` pairs; ``abatch_fetch`` returns a result for each
    custom id it has one for: a ``Completion`` or a typed ``EngineError`` (``retryable`` when
    another try may succeed). A custom id missing from the results counts as failed and
    retryable. Methods raise ``EngineError``s for failed calls, like ``acomplete``; the
    batcher retries transient ones. Engines never wait for a batch themselves.
    """

    max_batch_requests: ClassVar[int] = 50_000
    """The most lines one batch may hold (OpenAI: 50,000)."""

    @abstractmethod
    async def abatch_submit(
        self, items: Sequence[tuple[str, Request]], *, metadata: Mapping[str, str] | None = None
    ) -> str:
        """Create a batch of these requests; return its id."""

    @abstractmethod
    async def abatch_poll(self, batch_id: str) -> BatchStatus:
        """The batch's current state and counts."""

    @abstractmethod
    async def abatch_fetch(self, batch_id: str) -> dict[str, Completion | EngineError]:
        """The results of a finished batch, by custom id."""

    @abstractmethod
    async def abatch_cancel(self, batch_id: str) -> BatchStatus:
        """Ask the provider to stop the batch (lines already answered stay fetchable)."""

    async def abatch_lookup(self, token: str) -> str | None:
        """Optional: the id of the batch created with ``metadata[TOKEN_FIELD] == token``, or
        ``None``. Closes the crash window between creating a batch and recording its id; an
        engine without it submits such a batch again on the rerun."""
        return None


_METHODS = ("abatch_submit", "abatch_poll", "abatch_fetch", "abatch_cancel")


def supports_batch(engine: Any) -> bool:
    """True for engines that implement the batch contract (a ``BatchEngine`` subclass or an
    object with its four methods)."""
    return isinstance(engine, BatchEngine) or all(
        callable(getattr(engine, m, None)) for m in _METHODS
    )


def batch_price(price: Price | None) -> Price | None:
    """The price of a batched request: the table's batch column, 50 % of the online price where
    it has none (OpenAI's, Anthropic's and Google's batch discount)."""
    if price is None:
        return None
    bi = getattr(price, "batch_input", None)
    bo = getattr(price, "batch_output", None)
    return Price(price.input * 0.5 if bi is None else bi, price.output * 0.5 if bo is None else bo)

"""The executor contract: where a directory run's extraction and generation happen.

The default ``local`` executor (``runs.LocalExecutor``) reads files in worker processes on this
machine and sends requests through one dispatcher here. Executor plugins
(``register_executors``) spread the same work elsewhere — e.g. over a Ray cluster — and must
return results in input order, so a run gives the same dataset whatever executes it. What they
need for that is public: ``instructgen.ExtractionRun`` (extraction bookkeeping and its cache),
``instructgen.extract_one`` (one file, in any process), ``instructgen.pairs_for_chunks``
(question/answer pairs through a dispatcher and its cache) and ``instructgen.EngineSpec``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from instructgen.dispatch import DispatchConfig
    from instructgen.documents.discovery import Found
    from instructgen.documents.types import Chunk, ExtractOptions, ExtractResult
    from instructgen.engine_contract import Engine
    from instructgen.progress import ProgressCallback

__all__ = ["Executor", "GenerationResult", "Pairs"]

Pairs = list[tuple[str, str]]


@dataclass
class GenerationResult:
    pairs: list[Pairs]  # one list per chunk, in the order of the chunks given
    stats: dict[str, Any]  # RunStats.to_dict() summed over workers
    failed: list[dict[str, Any]] = field(default_factory=list)
    # How the replies went: replies, unparsed_replies, follow_up_requests, short_chunks.
    replies: dict[str, Any] = field(default_factory=dict)


class Executor(ABC):
    name: ClassVar[str] = ""
    streams: ClassVar[bool] = False
    """Whether ``runs.run_from_dir`` streams a directory run on this executor (its own
    extraction workers and dispatcher on this machine; the ``local`` executor) instead of
    calling ``extract`` and then ``generate``."""

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abstractmethod
    def extract(
        self,
        found: Sequence[Found],
        options: ExtractOptions,
        cache_path: Path | None,
        on_result: Callable[[ExtractResult], None] | None = None,
    ) -> list[ExtractResult]:
        """Extract every file; results in the order of ``found``."""

    @abstractmethod
    async def generate(
        self,
        chunks: Sequence[Chunk],
        engine: Engine,
        *,
        n: int,
        config: DispatchConfig | None,
        cache_dir: Path | None,
        progress: ProgressCallback | None = None,
    ) -> GenerationResult:
        """Question/answer pairs for every chunk (at most ``n`` each), in chunk order.
        ``cache_dir``: where response caches go (None: no cache)."""

    def close(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Release what the executor holds (cluster connections, ...)."""

"""The executor contract: where a directory run's extraction and generation happen.

The default ``local`` executor reads files in worker processes on this machine and sends
requests through one dispatcher here. Executor plugins (``register_executors``) spread the same
work elsewhere — e.g. over a Ray cluster — and must return results in input order, so a run
gives the same dataset whatever executes it.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from instructgen.documents.discovery import Found
    from instructgen.documents.extraction import ExtractOptions, ExtractResult
    from instructgen.documents.pipeline import Chunk
    from instructgen.engines import Engine

__all__ = ["EngineSpec", "Executor", "GenerationResult", "LocalExecutor"]

Pairs = list[tuple[str, str]]


@dataclass(frozen=True)
class EngineSpec:
    """How to rebuild an engine in another process. Holds no key: workers read it from the
    environment variable named by ``key_env_var`` (executors forward it without logging it)."""

    name: str
    model: str
    base_url: str | None = None
    timeout: float = 60.0
    options: dict[str, Any] = field(default_factory=dict)
    key_env_var: str | None = None

    @classmethod
    def of(cls, engine: Engine) -> EngineSpec:
        return cls(
            engine.name,
            engine.model,
            engine.base_url,
            engine.timeout,
            dict(engine.options),
            engine.key_env_vars[0] if engine.key_env_vars else None,
        )

    def build(self) -> Engine:
        from instructgen.engines import create_engine

        kwargs: dict[str, Any] = {"model": self.model, "timeout": self.timeout, **self.options}
        if self.base_url:
            kwargs["base_url"] = self.base_url
        key = os.environ.get(self.key_env_var) if self.key_env_var else None
        if key:
            kwargs["api_key"] = key
        return create_engine(self.name, **kwargs)


@dataclass
class GenerationResult:
    pairs: list[Pairs]  # one list per chunk, in the order of the chunks given
    stats: dict[str, Any]  # RunStats.to_dict() summed over workers
    failed: list[dict[str, Any]] = field(default_factory=list)
    # How the replies went: replies, unparsed_replies, follow_up_requests, short_chunks.
    replies: dict[str, Any] = field(default_factory=dict)


class Executor(ABC):
    name: ClassVar[str] = ""

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
        config: Any,
        cache_dir: Path | None,
        progress: Any = None,
    ) -> GenerationResult:
        """Question/answer pairs for every chunk (at most ``n`` each), in chunk order.
        ``cache_dir``: where response caches go (None: no cache)."""

    def close(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Release what the executor holds (cluster connections, ...)."""


class LocalExecutor(Executor):
    """This machine: extraction worker processes and one dispatcher."""

    name = "local"

    def extract(
        self,
        found: Sequence[Found],
        options: ExtractOptions,
        cache_path: Path | None,
        on_result: Callable[[ExtractResult], None] | None = None,
    ) -> list[ExtractResult]:
        from instructgen.documents.extraction import ExtractCache, extract_many

        cache = ExtractCache(cache_path) if cache_path else None
        try:
            return extract_many(found, options=options, cache=cache, on_result=on_result)
        finally:
            if cache is not None:
                cache.close()

    async def generate(
        self,
        chunks: Sequence[Chunk],
        engine: Engine,
        *,
        n: int,
        config: Any,
        cache_dir: Path | None,
        progress: Any = None,
    ) -> GenerationResult:
        from instructgen.cache import Cache
        from instructgen.dispatch import Dispatcher
        from instructgen.documents.pipeline import generate_pairs

        cache = Cache(cache_dir / "cache.sqlite3") if cache_dir is not None else None
        try:
            async with Dispatcher(
                engine, config=config, cache=cache, progress=progress, stage="questions"
            ) as d:
                result = await generate_pairs(chunks, d, n)
                return GenerationResult(
                    result.pairs, d.stats.to_dict(), result.failed, result.replies
                )
        finally:
            if cache is not None:
                cache.close()

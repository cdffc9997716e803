"""The ``ray`` executor: a directory run's extraction and question generation on a Ray cluster.

Files are extracted by Ray tasks (one file each, with the run's per-file timeout); chunks are
split into a fixed number of shards by a stable hash, and each shard runs in a Ray task with
its own dispatcher and its own cache file (``cache-ray-<shard>.sqlite3`` in the output folder,
which must be on storage the workers share for caching to carry over between runs). Results are
put back in input order, so the dataset equals the local executor's.

The API key never travels in task arguments: the workers read it from the environment variable
the engine names (``OPENAI_API_KEY``, ...), which this executor forwards through Ray's
``runtime_env`` when it starts or joins the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from instructgen import (
    Chunk,
    DispatchConfig,
    Engine,
    EngineSpec,
    Executor,
    ExecutorRegistry,
    ExtractionRun,
    ExtractOptions,
    ExtractResult,
    Found,
    GenerationResult,
    ProgressCallback,
    extract_one,
    hookimpl,
    pairs_for_chunks,
)

__all__ = ["RayExecutor"]

NUM_SHARDS = 8


def _shard_of(rel: str, index: int, shards: int) -> int:
    digest = hashlib.sha256(f"{rel}\0{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % shards


def _run_shard(
    spec: EngineSpec,
    chunks: list[tuple[int, str, int, int, str]],
    n: int,
    config: DispatchConfig | None,
    cache_file: str | None,
) -> dict[str, Any]:
    """Runs inside a Ray worker: one dispatcher, one cache file, this shard's chunks."""
    objs = [Chunk(rel, index, total, text) for _, rel, index, total, text in chunks]
    result = asyncio.run(
        pairs_for_chunks(objs, spec.build(), n=n, config=config, cache_file=cache_file)
    )
    return {
        "positions": [c[0] for c in chunks],
        "pairs": result.pairs,
        "failed": result.failed,
        "replies": result.replies,
        "stats": result.stats,
    }


def _sum_replies(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The shards' reply accounting as one (counts added, short chunks in file order)."""
    total: dict[str, Any] = {"short_chunks": []}
    for p in parts:
        for k, v in p.items():
            if k == "short_chunks":
                total[k].extend(v)
            else:
                total[k] = total.get(k, 0) + v
    total["short_chunks"].sort(key=lambda s: (s["file"], s["chunk"]))
    return total


def _sum_stats(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for p in parts:
        for k, v in p.items():
            if k == "elapsed_s":
                total[k] = max(total.get(k, 0.0), v)
            elif k == "errors":
                errs = total.setdefault(k, {})
                for name, count in v.items():
                    errs[name] = errs.get(name, 0) + count
            elif isinstance(v, int | float):
                total[k] = round(total.get(k, 0) + v, 6)
    return total


class RayExecutor(Executor):
    """Options: ``address`` (``HOST:6379``, ``ray://HOST:10001`` or ``auto``; none starts a
    local Ray instance), ``workers`` (CPUs of that local instance, default 2)."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        shards: int = NUM_SHARDS,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.address = address
        self.workers = workers or 2
        self.shards = shards
        self._started = False
        self._env: dict[str, str] = {}
        self._reaper: subprocess.Popen[bytes] | None = None

    def _ray(self, env: dict[str, str] | None = None) -> Any:
        import ray

        if env:
            self._env.update(env)
        if not ray.is_initialized():
            runtime_env = {"env_vars": dict(self._env)} if self._env else None
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": False,
            }
            if runtime_env:
                kwargs["runtime_env"] = runtime_env
            if self.address:
                ray.init(address=self.address, **kwargs)
            else:
                ray.init(num_cpus=self.workers, **kwargs)
                self._reaper = _start_reaper()
            self._started = True
        return ray

    def extract(
        self,
        found: Sequence[Found],
        options: ExtractOptions,
        cache_path: Path | None,
        on_result: Callable[[ExtractResult], None] | None = None,
    ) -> list[ExtractResult]:
        ray = self._ray()
        remote = ray.remote(num_cpus=1, max_retries=0)(extract_one)
        with ExtractionRun(found, cache_path, on_result) as run:
            pending: dict[Any, tuple[int, float]] = {}
            for i in run.todo:
                f = found[i]
                pending[remote.remote(str(f.path), f.rel, f.size)] = (i, time.monotonic())
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                now = time.monotonic()
                for ref in ready:
                    i, _started = pending.pop(ref)
                    try:
                        res = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # the task's worker died (OOM, ...)
                        run.crashed(i, f"Ray: {type(exc).__name__}")
                    else:
                        run.record(i, res)
                for ref, (i, started) in list(pending.items()):
                    if now - started > options.timeout:
                        ray.cancel(ref, force=True)
                        pending.pop(ref)
                        run.timed_out(i, options.timeout)
            return run.ordered()

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
        from dataclasses import replace

        spec = EngineSpec.of(engine)
        env = {spec.key_env_var: engine.api_key} if spec.key_env_var and engine.api_key else {}
        ray = self._ray(env)  # a cluster joined before the key was known must have it set
        shards: dict[int, list[tuple[int, str, int, int, str]]] = {}
        for pos, c in enumerate(chunks):
            shards.setdefault(_shard_of(c.rel, c.index, self.shards), []).append(
                (pos, c.rel, c.index, c.total, c.text)
            )
        parallel = max(1, min(len(shards), self.workers))
        if config is not None and (config.rpm or config.tpm):
            # every shard has its own dispatcher: split the caps between those running at once
            config = replace(
                config,
                rpm=config.rpm / parallel if config.rpm else None,
                tpm=config.tpm / parallel if config.tpm else None,
            )
        remote = ray.remote(num_cpus=1, max_retries=0)(_run_shard)
        refs = [
            remote.remote(
                spec,
                shard_chunks,
                n,
                config,
                str(cache_dir / f"cache-ray-{shard}.sqlite3") if cache_dir else None,
            )
            for shard, shard_chunks in sorted(shards.items())
        ]
        outputs = await asyncio.to_thread(ray.get, refs)
        pairs: list[list[tuple[str, str]]] = [[] for _ in chunks]
        failed: list[dict[str, Any]] = []
        for out in outputs:
            for pos, p in zip(out["positions"], out["pairs"], strict=True):
                pairs[pos] = [tuple(x) for x in p]
            failed.extend(out["failed"])
        failed.sort(key=lambda f: (f["file"], f["chunk"]))
        return GenerationResult(
            pairs,
            _sum_stats([o["stats"] for o in outputs]),
            failed,
            _sum_replies([o.get("replies") or {} for o in outputs]),
        )

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
        if self._reaper is not None:
            _stop_reaper(self._reaper)
            self._reaper = None


def _start_reaper() -> subprocess.Popen[bytes] | None:
    """A process that ends what the local Ray instance leaves running if this run is killed
    (see ``reaper.py``); None where there is no Linux ``/proc`` to find those processes."""
    if not os.path.exists("/proc/self/stat"):
        return None
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("reaper.py")), str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop_reaper(reaper: subprocess.Popen[bytes]) -> None:
    """Ray was shut down here: the reaper leaves everything alone and exits."""
    with contextlib.suppress(OSError, ValueError):
        assert reaper.stdin is not None
        reaper.stdin.write(b"stop")
        reaper.stdin.close()
    try:
        reaper.wait(5)
    except subprocess.TimeoutExpired:
        reaper.kill()
        reaper.wait()


@hookimpl
def register_executors(registry: ExecutorRegistry) -> None:
    registry.add(RayExecutor)

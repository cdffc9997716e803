"""Rerunning a finished job from the cache: seconds and requests sent.

    python benchmarks/cache_rerun.py [--requests 10000]

Runs the job once against the local wire-format server (filling the SQLite cache), then again
with the same cache and counts what reached the server the second time. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from wire_server import WireServer

from instructgen import Request
from instructgen.cache import Cache
from instructgen.dispatch import DispatchConfig, Dispatcher
from instructgen.engines import create_engine


async def job(url: str, cache_path: Path, n: int) -> tuple[float, dict[str, object]]:
    engine = create_engine("openai", api_key="bench", base_url=url)
    cache = Cache(cache_path)
    requests = [
        Request.chat(f"question number {i}: what is {i} squared?", max_tokens=32) for i in range(n)
    ]
    start = time.perf_counter()
    async with Dispatcher(engine, config=DispatchConfig(concurrency=64), cache=cache) as d:
        await d.complete_many(requests)
    cache.close()
    return time.perf_counter() - start, d.stats.to_dict()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=10_000)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp, WireServer() as server:
        cache_path = Path(tmp) / "cache.sqlite3"
        first_s, _ = asyncio.run(job(server.openai_base_url, cache_path, a.requests))
        sent_first = len(server.calls)
        second_s, second = asyncio.run(job(server.openai_base_url, cache_path, a.requests))
        sent_second = len(server.calls) - sent_first
    print(
        json.dumps(
            {
                "requests": a.requests,
                "first_run": {"seconds": round(first_s, 2), "requests_sent": sent_first},
                "rerun_from_cache": {
                    "seconds": round(second_s, 2),
                    "requests_sent": sent_second,
                    "cached": second["requests_cached"],
                },
                "goal": {"seconds": 5, "requests_sent": 0},
                "meets_goal": second_s <= 5 and sent_second == 0,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

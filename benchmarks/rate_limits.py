"""429s from an overloaded server vs a true quota, against a local OpenAI-format server
(benchmarks/_server.py, asyncio, its own process) answering after 200 ms.

    python benchmarks/rate_limits.py [--requests 650] [--concurrency 64] [--latency 0.2]
                                     [--share 0.2] [--retry-after 1] [--rpm 1200]
                                     [--limit-requests 600]

Four runs of the dispatcher with the real OpenAI SDK, in one invocation:

- clean: every request answered (the baseline for the ratio);
- random 429s: ``--share`` of the requests, at random, answered 429 with ``Retry-After``
  (an overloaded provider): throughput as a fraction of the clean run's;
- a true limit: the server allows ``--rpm`` requests a minute (a token bucket holding one
  second's worth) and answers the rest with 429, ``x-ratelimit-remaining-requests: 0`` and
  ``retry-after-ms``: the rate reached as a fraction of the limit, and the share of requests
  answered 429; and the same limit signalled by ``retry-after-ms`` alone.

Each run first sends one untimed request (SDK import, client set-up). Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from instructgen import Request
from instructgen.dispatch import DispatchConfig, Dispatcher
from instructgen.engines import Completion, create_engine

HERE = Path(__file__).resolve().parent


class Server:
    def __init__(self, latency: float, *options: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "_server.py"), str(latency), *options],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=10) as r:
            data: dict[str, int] = json.loads(r.read())
        return data

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


async def run(url: str, n: int, concurrency: int, tag: str) -> dict[str, Any]:
    engine = create_engine("openai", api_key="bench", base_url=url)
    requests = [Request.chat(f"{tag} request {i}", max_tokens=16) for i in range(n)]
    async with Dispatcher(engine, config=DispatchConfig(concurrency=concurrency)) as d:
        await d.complete(Request.chat(f"{tag} warm-up", max_tokens=16))
        start = time.perf_counter()
        out = await d.complete_many(requests)
        elapsed = time.perf_counter() - start
    answered = sum(isinstance(c, Completion) for c in out)
    return {
        "requests": n,
        "answered": answered,
        "failed": n - answered,
        "seconds": round(elapsed, 3),
        "per_second": round(answered / elapsed, 2),
        "attempts": d.stats.sent - 1,
        "retries": d.stats.retried,
    }


def scenario(latency: float, n: int, k: int, tag: str, *options: str) -> dict[str, Any]:
    server = Server(latency, *options)
    try:
        before = server.stats()
        result = asyncio.run(run(server.url, n, k, tag))
        after = server.stats()
    finally:
        server.close()
    ok = after["ok"] - before["ok"]
    limited = after["limited"] - before["limited"]
    result["server_answered_429"] = limited
    result["share_answered_429"] = round(limited / max(1, ok + limited), 3)
    result["server_max_in_flight"] = after["max_in_flight"]
    return result


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=650)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--share", type=float, default=0.2)
    p.add_argument("--retry-after", type=float, default=1.0)
    p.add_argument("--rpm", type=int, default=1200)
    p.add_argument("--limit-requests", type=int, default=600, help="requests of the limit run")
    a = p.parse_args()
    k, n = a.concurrency, a.requests
    clean = scenario(a.latency, n, k, "clean")
    overloaded = scenario(
        a.latency,
        n,
        k,
        "random",
        *("--random-429", str(a.share), "--retry-after", str(a.retry_after)),
    )
    per_second = a.rpm / 60

    def limited(*options: str) -> dict[str, Any]:
        run = scenario(a.latency, a.limit_requests, k, "limit", "--rpm", str(a.rpm), *options)
        burst = per_second  # the bucket starts with one second's worth
        bound = (burst + per_second * run["seconds"]) / run["seconds"]
        return {
            **run,
            "rpm": a.rpm,
            "limit_per_second": per_second,
            "fraction_of_limit": round(run["per_second"] / per_second, 3),
            "fraction_of_limit_with_burst": round(run["per_second"] / bound, 3),
        }

    limit = limited()
    plain = limited("--no-ratelimit-headers")
    print(
        json.dumps(
            {
                "latency_s": a.latency,
                "concurrency": k,
                "cpus": os.cpu_count(),
                "clean": clean,
                "random_429": {
                    **overloaded,
                    "share": a.share,
                    "retry_after_s": a.retry_after,
                    "fraction_of_clean": round(overloaded["per_second"] / clean["per_second"], 3),
                },
                "true_limit": limit,
                "true_limit_without_ratelimit_headers": plain,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

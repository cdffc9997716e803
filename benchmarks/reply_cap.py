"""Peak memory of a run whose server sends oversized replies, with and without the reply-size
limit. Prints JSON.

    python benchmarks/reply_cap.py                          # this tree
    git archive 772d444 core plugins | tar -x -C /tmp/before
    python benchmarks/reply_cap.py --src /tmp/before        # the tree before the limit

Three cases, each against the tests' wire server (tests/wire_server.py) running in its own
process, so that only the client's memory is measured:

- ``huge``: every reply is 200 with a 20 MB body (Content-Length, not JSON); 4 requests, 4 at
  a time (without the limit each is read whole and retried as malformed);
- ``endless``: one reply is a chunked body that never ends, sent at 20 MB/s; ``--timeout 5``;
- ``json``: every reply is a valid 20 MB chat completion (chunked); 4 requests, 4 at a time,
  with a cache (without the limit they are cached).

The client is one process per case running the dispatcher with the ``openai`` engine (its
default aiohttp transport); it reports its peak resident memory (``VmHWM``), the outcome of each
request, the attempts the server saw, the bytes the server managed to send and the cache's size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
CASES = {
    # case: (wire-server fault, requests, concurrency, timeout, cache)
    "huge": ("huge", 4, 4, 60.0, False),
    "endless": ("endless", 1, 1, 5.0, False),
    "json": ("hugejson", 4, 4, 60.0, True),
}


def serve(fault: str, size: int, rate: float | None) -> None:
    """The wire server with ``fault`` on every request; port on stdout, counts at the end."""
    sys.path.insert(0, str(ROOT / "tests"))
    from wire_server import WireServer

    with WireServer() as server:
        server.huge_bytes = size
        server.endless_rate = rate
        server.endless_max = 400 * MB
        server.inject(fault, times=10_000)
        print(server.port, flush=True)
        sys.stdin.read()  # until the parent closes it
        time.sleep(0.5)  # a handler still writing counts its bytes
        sent = sum(server.body_bytes_sent.values())
        print(json.dumps({"attempts": len(server.calls), "bytes_sent": sent}), flush=True)


def client(port: int, requests: int, concurrency: int, timeout: float, cache: bool) -> None:
    import asyncio

    import instructgen
    from instructgen.cache import Cache
    from instructgen.dispatch import DispatchConfig, Dispatcher

    engine = instructgen.engine(
        "openai", api_key="sk-bench", base_url=f"http://127.0.0.1:{port}/v1", timeout=timeout
    )
    folder = Path(tempfile.mkdtemp(prefix="reply-cap-"))
    store = Cache(folder / "cache.sqlite3") if cache else None
    cfg = DispatchConfig(concurrency=concurrency, timeout=timeout, backoff_base=0.05)

    async def go() -> list[Any]:
        async with Dispatcher(engine, config=cfg, cache=store) as d:
            try:
                return await d.complete_many(
                    [instructgen.Request.chat(f"request {i}") for i in range(requests)]
                )
            except instructgen.InstructgenError as exc:  # the run stopped (e.g. the breaker)
                return [exc]

    started = time.monotonic()
    out = asyncio.run(go())
    elapsed = time.monotonic() - started
    cached = 0
    if store is not None:
        cached = len(store)
        store.close()
    cache_bytes = sum(f.stat().st_size for f in folder.iterdir())
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    peak = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    outcomes: dict[str, int] = {}
    for r in out:
        outcomes[type(r).__name__] = outcomes.get(type(r).__name__, 0) + 1
    print(
        json.dumps(
            {
                "peak_rss_mb": round(peak / MB, 1),
                "elapsed_s": round(elapsed, 2),
                "outcomes": outcomes,
                "cached_replies": cached,
                "cache_mb": round(cache_bytes / MB, 1),
                "example": str(next((r for r in out if isinstance(r, Exception)), ""))[:160],
            }
        )
    )


def run_case(name: str, src: Path, size: int) -> dict[str, Any]:
    fault, requests, concurrency, timeout, cache = CASES[name]
    here = [sys.executable, str(Path(__file__).resolve())]
    rate = 20 * MB if name == "endless" else None
    server = subprocess.Popen(
        [*here, "--serve", fault, "--size", str(size), *(["--rate", str(rate)] if rate else [])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    try:
        port = int(server.stdout.readline())
        env = {**os.environ, "PYTHONPATH": f"{src / 'core'}:{src / 'plugins'}"}
        args = [*here, "--client", str(port), "--requests", str(requests)]
        args += ["--concurrency", str(concurrency), "--timeout", str(timeout)]
        if cache:
            args.append("--cache")
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-2000:])
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        server.stdin.close()
        counts = server.stdout.readline()
        server.wait(timeout=30)
    server_side = json.loads(counts) if counts.strip() else {}
    result["attempts_at_server"] = server_side.get("attempts")
    result["mb_server_sent"] = round(server_side.get("bytes_sent", 0) / MB, 1)
    return {"case": name, "requests": requests, "concurrency": concurrency, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=ROOT, help="tree with core/ and plugins/")
    parser.add_argument("--case", choices=sorted(CASES), action="append")
    parser.add_argument("--size", type=int, default=20 * MB, help="bytes of an oversized reply")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=60.0, help=argparse.SUPPRESS)
    parser.add_argument("--cache", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.size, args.rate)
        return
    if args.client:
        client(args.client, args.requests, args.concurrency, args.timeout, args.cache)
        return
    src = args.src.resolve()
    results = [run_case(name, src, args.size) for name in args.case or list(CASES)]
    print(
        json.dumps(
            {
                "src": str(src),
                "reply_mb": round(args.size / MB, 1),
                "load_average": os.getloadavg(),
                "cases": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""A minimal asyncio HTTP/1.1 server speaking the OpenAI chat-completions reply format, for the
rate-limit benchmarks (benchmarks/rate_limits.py): each request is answered after exactly
``latency`` seconds without threads (the tests' threaded server adds GIL waits at 64
connections, which would be measured as dispatcher slowness). Prints the port on stdout;
serves until stdin closes.

    python benchmarks/_limits_server.py LATENCY [--random-429 SHARE --retry-after S] [--rpm N]

``--random-429`` answers that share of requests (at random, seeded) with 429 and
``Retry-After``, as an overloaded provider does; ``--rpm`` enforces a true limit of N requests a
minute (a token bucket holding one second's worth) and answers the requests over it with 429,
``x-ratelimit-remaining-requests: 0`` and ``retry-after-ms`` at once (only ``retry-after-ms``
with ``--no-ratelimit-headers``). It counts what it
answered: a ``GET /stats`` returns ``{"ok", "limited", "max_in_flight"}`` as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import no_delay, read_request


def reply(body: bytes) -> bytes:
    try:
        req = json.loads(body or b"{}")
    except json.JSONDecodeError:
        req = {}
    payload = json.dumps(
        {
            "id": "bench",
            "object": "chat.completion",
            "created": 0,
            "model": req.get("model", "m"),
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "A short benchmark answer."},
                }
            ],
            "usage": {"prompt_tokens": 8, "completion_tokens": 5, "total_tokens": 13},
        }
    ).encode()
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(payload)).encode()
        + b"\r\n\r\n"
        + payload
    )


def error_reply(status: int, headers: dict[str, str], body: dict[str, Any]) -> bytes:
    payload = json.dumps(body).encode()
    head = [f"HTTP/1.1 {status} Too Many Requests", "Content-Type: application/json"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


class Policy:
    """What the server answers: always 200 after ``latency``, or 429s as configured."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.latency = args.latency
        self.random_429 = args.random_429
        self.retry_after = args.retry_after
        self.rng = random.Random(args.seed)
        self.rpm = args.rpm
        self.plain = args.no_ratelimit_headers
        self.level = args.rpm / 60 if args.rpm else 0.0  # a second's worth to start
        self.updated = time.monotonic()
        self.ok = self.limited = self.in_flight = self.max_in_flight = 0

    def refuse(self) -> bytes | None:
        """A 429 for this request, or None to answer it."""
        if self.random_429 and self.rng.random() < self.random_429:
            return error_reply(
                429,
                {"Retry-After": f"{self.retry_after:g}"},
                {"error": {"message": "The server is overloaded, retry later"}},
            )
        if self.rpm:
            rate = self.rpm / 60
            now = time.monotonic()
            self.level = min(rate, self.level + (now - self.updated) * rate)
            self.updated = now
            if self.level < 1:
                wait_ms = max(1, int((1 - self.level) / rate * 1000))
                headers = {"retry-after-ms": str(wait_ms)}
                if not self.plain:
                    headers["x-ratelimit-limit-requests"] = str(self.rpm)
                    headers["x-ratelimit-remaining-requests"] = "0"
                    headers["x-ratelimit-reset-requests"] = f"{wait_ms}ms"
                return error_reply(
                    429,
                    headers,
                    {"error": {"message": f"Rate limit reached: {self.rpm} requests/min"}},
                )
            self.level -= 1
        return None


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, p: Policy) -> None:
    no_delay(writer)
    try:
        while True:
            head, body = await read_request(reader)
            if head.startswith(b"GET /stats"):
                stats = {"ok": p.ok, "limited": p.limited, "max_in_flight": p.max_in_flight}
                payload = json.dumps(stats).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(payload)).encode()
                    + b"\r\n\r\n"
                    + payload
                )
                await writer.drain()
                continue
            refused = p.refuse()
            if refused is not None and p.rpm and not p.random_429:
                p.limited += 1  # a true limit answers at once
                writer.write(refused)
                await writer.drain()
                continue
            p.in_flight += 1
            p.max_in_flight = max(p.max_in_flight, p.in_flight)
            try:
                await asyncio.sleep(p.latency)
            finally:
                p.in_flight -= 1
            if refused is not None:
                p.limited += 1
                writer.write(refused)
            else:
                p.ok += 1
                writer.write(reply(body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("latency", type=float, nargs="?", default=0.0)
    ap.add_argument("--random-429", type=float, default=0.0, help="share of requests")
    ap.add_argument("--retry-after", type=float, default=1.0, help="seconds, with --random-429")
    ap.add_argument("--rpm", type=int, default=0, help="a true limit, requests a minute")
    ap.add_argument(
        "--no-ratelimit-headers", action="store_true", help="with --rpm: Retry-After only"
    )
    ap.add_argument("--seed", type=int, default=1)
    policy = Policy(ap.parse_args())
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, policy), "127.0.0.1", 0, backlog=1024
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes the pipe
    server.close()


if __name__ == "__main__":
    asyncio.run(main())

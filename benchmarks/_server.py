"""A minimal asyncio HTTP/1.1 server speaking the OpenAI chat-completions reply format, for
throughput benchmarks: each request is answered after exactly ``latency`` seconds without
threads (the tests' threaded server adds GIL waits at 64 connections, which would be measured
as dispatcher slowness). Prints the port on stdout; serves until stdin closes, then prints one
JSON line of statistics (requests answered, first arrival and last answer, the most in flight).

    python benchmarks/_server.py 0.2                      # a fixed short answer
    python benchmarks/_server.py 0.2 --selfinstruct       # plausible Self-Instruct replies
    python benchmarks/_server.py 0.2 --evol               # Evol-Instruct replies
    python benchmarks/_server.py 0.2 --selfinstruct --latency-bootstrap 0.12 \\
        --latency-classify 0.01 --latency-instances 0.06  # per-stage latencies
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _evol_replies
import _selfinstruct_replies


class Stats:
    def __init__(self) -> None:
        self.first: float | None = None
        self.last = 0.0
        self.answered = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.by_kind: Counter[str] = Counter()
        self.busy: Counter[int] = Counter()  # request-seconds answered per second of the run

    def account(self, start: float, end: float) -> None:
        """Spread one request's time in the server over the seconds of the run it covered."""
        assert self.first is not None
        a, b = start - self.first, end - self.first
        while a < b:
            second = int(a)
            step = min(b, second + 1) - a
            self.busy[second] += step
            a += step

    def to_dict(self) -> dict[str, Any]:
        span = (self.last - self.first) if self.first is not None else 0.0
        return {
            "requests": self.answered,
            "span_s": round(span, 3),
            "per_second": round(self.answered / span, 2) if span else None,
            "max_in_flight": self.max_in_flight,
            "by_kind": dict(self.by_kind),
            "mean_in_flight_each_second": [round(self.busy[i], 1) for i in range(int(span) + 1)],
        }


def prompt_of(req: dict[str, Any]) -> tuple[str, bool]:
    if "messages" in req:
        return "\n\n".join(str(m.get("content") or "") for m in req["messages"]), True
    p = req.get("prompt", "")
    return (p if isinstance(p, str) else "\n\n".join(p)), False


def reply(req: dict[str, Any], text: str, chat: bool) -> bytes:
    if chat:
        choice: dict[str, Any] = {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": text},
        }
        obj = "chat.completion"
    else:
        choice = {"index": 0, "finish_reason": "stop", "text": text, "logprobs": None}
        obj = "text_completion"
    payload = json.dumps(
        {
            "id": "bench",
            "object": obj,
            "created": 0,
            "model": req.get("model", "m"),
            "choices": [choice],
            "usage": {"prompt_tokens": 8, "completion_tokens": 5, "total_tokens": 13},
        }
    ).encode()
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(payload)).encode()
        + b"\r\n\r\n"
        + payload
    )


def no_delay(writer: asyncio.StreamWriter) -> None:
    """TCP_NODELAY: without it one-at-a-time clients stall about 40 ms a request (Nagle and
    delayed ACKs), and the benchmark would measure that."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One HTTP/1.1 request: its head (request line and headers) and its body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    return head, body


async def handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, args: argparse.Namespace, st: Stats
) -> None:
    no_delay(writer)
    try:
        while True:
            head, body = await read_request(reader)
            if st.first is None:
                st.first = time.monotonic()
                if args.first_request:  # the wall-clock time, for other processes to compare
                    Path(args.first_request).write_text(repr(time.time()))
            st.in_flight += 1
            st.max_in_flight = max(st.max_in_flight, st.in_flight)
            try:
                req = json.loads(body or b"{}")
            except json.JSONDecodeError:
                req = {}
            latency = args.latency
            text = args.reply
            chat = "messages" in req or b"/chat/" in head.split(b"\r\n", 1)[0]
            if args.selfinstruct:
                prompt, chat = prompt_of(req)
                kind = _selfinstruct_replies.kind(prompt)
                st.by_kind[kind] += 1
                text = _selfinstruct_replies.reply(prompt, chat)
                override = getattr(args, f"latency_{kind}")
                latency = latency if override is None else override
            elif args.evol:
                prompt, chat = prompt_of(req)
                kind = _evol_replies.kind(prompt)
                st.by_kind[kind] += 1
                text = _evol_replies.reply(prompt)
            arrived = time.monotonic()
            await asyncio.sleep(latency)
            writer.write(reply(req, text, chat))
            await writer.drain()
            st.in_flight -= 1
            st.answered += 1
            st.last = time.monotonic()
            st.account(arrived, st.last)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("latency", type=float, nargs="?", default=0.0)
    p.add_argument("--selfinstruct", action="store_true")
    p.add_argument("--evol", action="store_true", help="Evol-Instruct replies (_evol_replies.py)")
    p.add_argument("--reply", default="A short benchmark answer.", help="the answer's text")
    p.add_argument("--first-request", default=None, help="file for the first request's time")
    for kind in ("bootstrap", "classify", "instances", "alpaca"):
        p.add_argument(f"--latency-{kind}", type=float, default=None)
    args = p.parse_args()
    st = Stats()
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, args, st), "127.0.0.1", 0, backlog=1024
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes the pipe
    server.close()
    print(json.dumps(st.to_dict()), flush=True)


if __name__ == "__main__":
    asyncio.run(main())

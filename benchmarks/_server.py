"""A minimal asyncio HTTP/1.1 server speaking the OpenAI chat-completions reply format, for
throughput benchmarks: each request is answered after exactly ``latency`` seconds without
threads (the tests' threaded server adds GIL waits at 64 connections, which would be measured
as dispatcher slowness). Prints the port on stdout; serves until stdin closes, then prints one
JSON line of statistics (requests answered, first arrival and last answer, the most in flight).

    python benchmarks/_server.py 0.2                      # a fixed short answer
    python benchmarks/_server.py 0.2 --selfinstruct       # plausible Self-Instruct replies
    python benchmarks/_server.py 0.2 --selfinstruct --latency-bootstrap 0.12 \\
        --latency-classify 0.01 --latency-instances 0.06  # per-stage latencies
    python benchmarks/_server.py 0.2 --selfinstruct --fault-429 0.2 --fault-500 0.05 \\
        --fault-reset 0.02 --fault-malformed 0.02 --fault-length 0.02 \\
        --fault-timeout 0.01 --timeout-seconds 30 --seed 1     # an unreliable provider

Faults are drawn at random (seeded by ``--seed``) for each request, after its latency: 429 with
``Retry-After: 1``, 500, a connection reset (RST), a 200 whose body is not JSON, a reply cut by
length (``finish_reason: "length"``, half the text), or a request held ``--timeout-seconds``
and then dropped without an answer (what a gateway's timeout looks like to the client). The
statistics count them under ``faults``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import struct
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _selfinstruct_replies


class Stats:
    def __init__(self) -> None:
        self.first: float | None = None
        self.last = 0.0
        self.answered = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.by_kind: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
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
            "faults": dict(self.faults),
            "mean_in_flight_each_second": [round(self.busy[i], 1) for i in range(int(span) + 1)],
        }


def prompt_of(req: dict[str, Any]) -> tuple[str, bool]:
    if "messages" in req:
        return "\n\n".join(str(m.get("content") or "") for m in req["messages"]), True
    p = req.get("prompt", "")
    return (p if isinstance(p, str) else "\n\n".join(p)), False


FAULTS = ("429", "500", "reset", "malformed", "length", "timeout")


def draw_fault(args: argparse.Namespace, rng: random.Random) -> str | None:
    """The fault this request gets, if any: each kind with its ``--fault-KIND`` share."""
    x = rng.random()
    for kind in FAULTS:
        share = getattr(args, f"fault_{kind}")
        if x < share:
            return kind
        x -= share
    return None


def response(status: str, payload: bytes, headers: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{headers}"
        f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )


def reply(req: dict[str, Any], text: str, chat: bool, finish: str = "stop") -> bytes:
    if chat:
        choice: dict[str, Any] = {
            "index": 0,
            "finish_reason": finish,
            "message": {"role": "assistant", "content": text},
        }
        obj = "chat.completion"
    else:
        choice = {"index": 0, "finish_reason": finish, "text": text, "logprobs": None}
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
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    args: argparse.Namespace,
    st: Stats,
    rng: random.Random,
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
            arrived = time.monotonic()
            await asyncio.sleep(latency)
            fault = draw_fault(args, rng)
            if fault is not None:
                st.faults[fault] += 1
            if args.log is not None:  # when it arrived, what it asked, what it gets
                kind = _selfinstruct_replies.kind(prompt_of(req)[0]) if args.selfinstruct else ""
                at = round(arrived - st.first, 3)
                line = {"at": at, "kind": kind, "fault": fault, "key": hash(body) % 10**8}
                args.log.write(json.dumps(line) + "\n")
            if fault == "reset":
                st.in_flight -= 1
                sock = writer.get_extra_info("socket")
                if sock is not None:  # SO_LINGER 0: close with an RST
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            if fault == "timeout":
                await asyncio.sleep(args.timeout_seconds)
                st.in_flight -= 1
                return  # dropped without an answer (finally closes the connection)
            if fault == "429":
                error = b'{"error": {"message": "overloaded, retry later"}}'
                writer.write(response("429 Too Many Requests", error, "Retry-After: 1\r\n"))
            elif fault == "500":
                writer.write(response("500 Internal Server Error", b'{"error": {"message": "x"}}'))
            elif fault == "malformed":
                writer.write(response("200 OK", b'{"choices": [ this is not json'))
            elif fault == "length":
                writer.write(reply(req, text[: max(1, len(text) // 2)], chat, "length"))
            else:
                writer.write(reply(req, text, chat))
            await writer.drain()
            st.in_flight -= 1
            st.answered += 1
            st.last = time.monotonic()
            st.account(arrived, st.last)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    except asyncio.CancelledError:
        pass  # the server is stopping with requests still held or in flight
    finally:
        writer.close()


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("latency", type=float, nargs="?", default=0.0)
    p.add_argument("--selfinstruct", action="store_true")
    p.add_argument("--reply", default="A short benchmark answer.", help="the answer's text")
    p.add_argument("--first-request", default=None, help="file for the first request's time")
    for kind in ("bootstrap", "classify", "instances"):
        p.add_argument(f"--latency-{kind}", type=float, default=None)
    for kind in FAULTS:
        p.add_argument(f"--fault-{kind}", type=float, default=0.0, help="share of requests")
    p.add_argument("--timeout-seconds", type=float, default=30.0, help="with --fault-timeout")
    p.add_argument("--seed", type=int, default=1, help="seeds the faults")
    p.add_argument("--log", type=argparse.FileType("w"), default=None, help="a line a request")
    args = p.parse_args()
    st = Stats()
    rng = random.Random(args.seed)
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, args, st, rng), "127.0.0.1", 0, backlog=1024
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes the pipe
    server.close()
    print(json.dumps(st.to_dict()), flush=True)


if __name__ == "__main__":
    asyncio.run(main())

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
    python benchmarks/_server.py 0.2 --selfinstruct --rpm 600   # a requests-per-minute limit

Completion requests may carry ``prompt`` as a list (OpenAI's legacy completions): each prompt
is answered, choices come back with ``index`` = prompt position × n + choice, and a list is
answered after the longest latency of its prompts' kinds. ``--rpm N`` enforces a true limit
of N requests a minute, lists counting one (a token bucket holding one second's worth): a
request over it is answered 429 at once with ``retry-after-ms`` and
``x-ratelimit-remaining-requests: 0``. The statistics count requests answered, prompts
answered and requests refused; ``GET /stats`` returns them while the server runs.

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

import _evol_replies
import _selfinstruct_replies


class Stats:
    def __init__(self) -> None:
        self.first: float | None = None
        self.last = 0.0
        self.answered = 0
        self.prompts = 0  # prompts answered (several a request with prompt lists)
        self.limited = 0  # requests answered 429 (--rpm)
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
            "prompts": self.prompts,
            "refused_429": self.limited,
            "span_s": round(span, 3),
            "per_second": round(self.answered / span, 2) if span else None,
            "max_in_flight": self.max_in_flight,
            "by_kind": dict(self.by_kind),
            "faults": dict(self.faults),
            "mean_in_flight_each_second": [round(self.busy[i], 1) for i in range(int(span) + 1)],
        }


class RequestLimit:
    """A true limit of ``rpm`` requests a minute: a token bucket holding a second's worth."""

    def __init__(self, rpm: int) -> None:
        self.rate = rpm / 60
        self.rpm = rpm
        self.level = self.rate
        self.updated = time.monotonic()

    def refuse(self) -> bytes | None:
        now = time.monotonic()
        self.level = min(self.rate, self.level + (now - self.updated) * self.rate)
        self.updated = now
        if self.level >= 1:
            self.level -= 1
            return None
        wait_ms = max(1, int((1 - self.level) / self.rate * 1000))
        payload = json.dumps(
            {"error": {"message": f"Rate limit reached: {self.rpm} requests/min"}}
        ).encode()
        head = [
            "HTTP/1.1 429 Too Many Requests",
            "Content-Type: application/json",
            f"retry-after-ms: {wait_ms}",
            f"x-ratelimit-limit-requests: {self.rpm}",
            "x-ratelimit-remaining-requests: 0",
            f"x-ratelimit-reset-requests: {wait_ms}ms",
            f"Content-Length: {len(payload)}",
        ]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


def prompts_of(req: dict[str, Any]) -> list[str] | None:
    """The prompts of a completion request whose ``prompt`` is a list, else None."""
    p = req.get("prompt")
    return [str(x) for x in p] if "messages" not in req and isinstance(p, list) else None


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


def reply(req: dict[str, Any], text: str | list[str], chat: bool, finish: str = "stop") -> bytes:
    """The reply to ``req``: ``text`` (a list: one text per prompt of a prompt list, each
    choice's index its prompt's position × n, n = 1 here)."""
    if isinstance(text, list):
        choices = [
            {"index": i, "finish_reason": finish, "text": t, "logprobs": None}
            for i, t in enumerate(text)
        ]
        return _payload(req, "text_completion", choices, 8 * len(text), 5 * len(text))
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
    return _payload(req, obj, [choice], 8, 5)


def _payload(req: dict[str, Any], obj: str, choices: list[Any], pt: int, ct: int) -> bytes:
    payload = json.dumps(
        {
            "id": "bench",
            "object": obj,
            "created": 0,
            "model": req.get("model", "m"),
            "choices": choices,
            "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
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
    limit: RequestLimit | None = None,
) -> None:
    no_delay(writer)
    try:
        while True:
            head, body = await read_request(reader)
            if head.startswith(b"GET /stats"):  # the statistics so far, as JSON
                payload = json.dumps(st.to_dict()).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(payload)).encode()
                    + b"\r\n\r\n"
                    + payload
                )
                await writer.drain()
                continue
            if st.first is None:
                st.first = time.monotonic()
                if args.first_request:  # the wall-clock time, for other processes to compare
                    Path(args.first_request).write_text(repr(time.time()))
            refused = limit.refuse() if limit is not None else None
            if refused is not None:
                st.limited += 1
                writer.write(refused)
                await writer.drain()
                continue
            st.in_flight += 1
            st.max_in_flight = max(st.max_in_flight, st.in_flight)
            try:
                req = json.loads(body or b"{}")
            except json.JSONDecodeError:
                req = {}
            latency = args.latency
            text: str | list[str] = args.reply
            chat = "messages" in req or b"/chat/" in head.split(b"\r\n", 1)[0]
            listed = prompts_of(req)
            if listed is not None:
                text, latency = list_replies(listed, args, st)
            elif args.selfinstruct:
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
            st.prompts += len(text) if isinstance(text, list) else 1
            st.last = time.monotonic()
            st.account(arrived, st.last)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    except asyncio.CancelledError:
        pass  # the server is stopping with requests still held or in flight
    finally:
        writer.close()


def list_replies(
    prompts: list[str], args: argparse.Namespace, st: Stats
) -> tuple[list[str], float]:
    """One reply per prompt of a list, and the latency: the longest of its prompts' kinds."""
    texts: list[str] = []
    latency = 0.0 if args.selfinstruct else args.latency
    for prompt in prompts:
        if args.selfinstruct:
            kind = _selfinstruct_replies.kind(prompt)
            st.by_kind[kind] += 1
            texts.append(_selfinstruct_replies.reply(prompt, False))
            override = getattr(args, f"latency_{kind}")
            latency = max(latency, args.latency if override is None else override)
        elif args.evol:
            kind = _evol_replies.kind(prompt)
            st.by_kind[kind] += 1
            texts.append(_evol_replies.reply(prompt))
        else:
            texts.append(args.reply)
    return texts, latency


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("latency", type=float, nargs="?", default=0.0)
    p.add_argument("--selfinstruct", action="store_true")
    p.add_argument("--evol", action="store_true", help="Evol-Instruct replies (_evol_replies.py)")
    p.add_argument("--reply", default="A short benchmark answer.", help="the answer's text")
    p.add_argument("--first-request", default=None, help="file for the first request's time")
    for kind in ("bootstrap", "classify", "instances", "alpaca"):
        p.add_argument(f"--latency-{kind}", type=float, default=None)
    p.add_argument("--rpm", type=int, default=0, help="a true limit, requests a minute")
    for kind in FAULTS:
        p.add_argument(f"--fault-{kind}", type=float, default=0.0, help="share of requests")
    p.add_argument("--timeout-seconds", type=float, default=30.0, help="with --fault-timeout")
    p.add_argument("--seed", type=int, default=1, help="seeds the faults")
    p.add_argument("--log", type=argparse.FileType("w"), default=None, help="a line a request")
    args = p.parse_args()
    st = Stats()
    rng = random.Random(args.seed)
    limit = RequestLimit(args.rpm) if args.rpm else None
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, args, st, rng, limit), "127.0.0.1", 0, backlog=1024
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes the pipe
    server.close()
    print(json.dumps(st.to_dict()), flush=True)


if __name__ == "__main__":
    asyncio.run(main())

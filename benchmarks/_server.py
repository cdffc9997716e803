"""A minimal asyncio HTTP/1.1 server speaking the OpenAI chat-completions reply format, for
throughput benchmarks: each request is answered after exactly ``latency`` seconds without
threads (the tests' threaded server adds GIL waits at 64 connections, which would be measured
as dispatcher slowness). Prints the port on stdout; serves until stdin closes."""

from __future__ import annotations

import asyncio
import json
import socket
import sys


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


async def handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, latency: float
) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length) if length else b""
            await asyncio.sleep(latency)
            writer.write(reply(body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main() -> None:
    latency = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, latency), "127.0.0.1", 0, backlog=1024
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes the pipe
    server.close()


if __name__ == "__main__":
    asyncio.run(main())

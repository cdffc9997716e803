"""The reply-size limit: every built-in engine stops reading an oversized reply at the limit,
fails the request with ``ReplyTooLargeError`` at once (no retry), and caches nothing of it;
batch result files are read line by line with each line capped.

The servers send what broken or hostile servers send: a 20 MB body with its Content-Length, a
chunked body that never ends, a valid reply whose text is megabytes long (chunked, so only
counting while reading can stop it) and the same reply as a gzip bomb. That memory stays
bounded is asserted by its cause: the server could not send more than the limit plus what the
sockets buffer (without the limit the endless body runs until the timeout); peak RSS figures
are in benchmarks/reply_cap.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from batch_server import BatchWireServer
from click.testing import CliRunner
from conftest import ENGINES, SHARED, TEST_KEY, make_engine
from wire_server import WireServer

from instructgen import (
    DEFAULT_MAX_REPLY_BYTES,
    Completion,
    Engine,
    ReplyTooLargeError,
    Request,
    capped_lines,
    custom_id_in,
)
from instructgen.batching import BatchConfig
from instructgen.cache import Cache
from instructgen.cli import cli
from instructgen.dispatch import DispatchConfig, Dispatcher

TRANSPORTS = [*ENGINES, "openai@httpx"]
OVERSIZED = ("huge", "endless", "hugejson", "gzipbomb")
LIMIT = 256 * 1024
# What loopback sockets may hold besides what the client read (send and receive buffers grow
# to a few MB each); the endless body sends forever without the limit.
SOCKET_SLACK = 24 * 1024 * 1024


def engine_for(server: WireServer, name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    if name.endswith("@httpx"):
        monkeypatch.setenv("INSTRUCTGEN_OPENAI_HTTPX", "1")
        name = name.split("@")[0]
    return make_engine(server, name)


def config(**kw: Any) -> DispatchConfig:
    return DispatchConfig(**{"max_reply_bytes": LIMIT, "backoff_base": 0.01, **kw})


async def complete_all(engine: Engine, requests: list[Request], **kw: Any) -> list[Any]:
    async with Dispatcher(engine, config=config(**{"timeout": 60, **kw})) as d:
        return await d.complete_many(requests)


def wait_for_handler(server: WireServer, kind: str) -> int:
    """The bytes the server's oversized reply wrote, once its handler has finished."""
    deadline = time.monotonic() + 30
    while kind not in server.body_bytes_sent and time.monotonic() < deadline:
        time.sleep(0.01)
    assert kind in server.body_bytes_sent, "the server is still writing the reply"
    return server.body_bytes_sent[kind]


@pytest.mark.parametrize("kind", OVERSIZED)
@pytest.mark.parametrize("name", TRANSPORTS)
def test_an_oversized_reply_stops_at_the_limit_and_is_not_retried(
    wire_server: WireServer, name: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wire_server.huge_bytes = 8 * 1024 * 1024
    wire_server.inject(kind, times=100)  # every attempt would get it again
    engine = engine_for(wire_server, name, monkeypatch)
    (result,) = asyncio.run(complete_all(engine, [Request.chat("Tell me everything.")]))

    assert isinstance(result, ReplyTooLargeError), result
    assert not result.retryable and result.limit == LIMIT
    text = str(result)
    assert text.startswith(name.split("@")[0] + ": ")
    assert "262,144 bytes" in text and "--max-reply-bytes" in text
    assert "max_reply_bytes" in text
    if kind == "huge":  # refused on its Content-Length, before the body
        assert result.received == wire_server.huge_bytes and not result.partial
    else:
        assert result.partial
    assert len(wire_server.calls) == 1  # sent once: not retried
    sent = wait_for_handler(wire_server, kind)
    if kind == "endless":
        assert sent < LIMIT + SOCKET_SLACK  # it stopped because the client hung up


@pytest.mark.parametrize("name", TRANSPORTS)
def test_replies_under_the_limit_are_read_whole_also_gzipped(
    wire_server: WireServer, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long valid reply under the limit, plain and gzip-compressed (decompressed by the
    limit's own reader), gives the same text."""
    wire_server.huge_bytes = 200_000
    wire_server.inject("hugejson", times=1, match=lambda c: "plain" in c.prompt)
    wire_server.inject("gzipbomb", times=1, match=lambda c: "gzip" in c.prompt)
    engine = engine_for(wire_server, name, monkeypatch)
    plain, gz, short = asyncio.run(
        complete_all(engine, [Request.chat(p) for p in ("plain", "gzip", "short")])
    )
    assert isinstance(plain, Completion) and isinstance(gz, Completion), (plain, gz)
    assert len(plain.text) == 200_000 and plain.text.startswith("All work and no play")
    assert gz.text == plain.text
    assert isinstance(short, Completion) and short.text.startswith("Answer")
    assert wire_server.body_bytes_sent["gzipbomb"] < 20_000  # it really came compressed


def test_the_other_requests_go_on_and_the_cache_never_holds_the_oversized_one(
    wire_server: WireServer, tmp_path: Path
) -> None:
    wire_server.huge_bytes = 2 * LIMIT
    wire_server.inject("hugejson", times=1, match=lambda c: "number 2" in c.prompt)
    requests = [Request.chat(f"question number {i}") for i in range(5)]
    with Cache(tmp_path / "cache.sqlite3") as cache:

        async def go(limit: int) -> tuple[list[Any], Dispatcher]:
            engine = make_engine(wire_server, "openai")
            async with Dispatcher(engine, config=config(max_reply_bytes=limit), cache=cache) as d:
                return await d.complete_many(requests), d

        out, d = asyncio.run(go(LIMIT))
        assert [type(r).__name__ for r in out] == [
            "Completion",
            "Completion",
            "ReplyTooLargeError",
            "Completion",
            "Completion",
        ]
        assert len(wire_server.calls) == 5 and len(cache) == 4
        assert d.stats.errors == {"ReplyTooLargeError": 1} and d.stats.retried == 0
        assert cache.get(d.key(requests[2])) is None
        # A rerun with a higher limit sends only the refused request.
        wire_server.inject("hugejson", times=1, match=lambda c: "number 2" in c.prompt)
        out2, d2 = asyncio.run(go(4 * LIMIT))
        assert all(isinstance(r, Completion) for r in out2)
        assert len(out2[2].text) == 2 * LIMIT
        assert len(wire_server.calls) == 6 and d2.stats.cached == 4 and len(cache) == 5


class _LongWinded(Engine):
    """A third-party engine whose HTTP client knows nothing of the limit."""

    name = "long-winded"
    needs_key = False

    async def acomplete(self, request: Request) -> Completion:
        return Completion(("word " * 100_000,), ("stop",))


def test_an_engine_that_reads_whole_replies_still_never_caches_an_oversized_one(
    tmp_path: Path,
) -> None:
    with Cache(tmp_path / "cache.sqlite3") as cache:

        async def go() -> Any:
            cfg = config(max_reply_bytes=100_000)
            async with Dispatcher(_LongWinded(), config=cfg, cache=cache) as d:
                return (await d.complete_many([Request.chat("hi")]))[0], d

        result, d = asyncio.run(go())
        assert isinstance(result, ReplyTooLargeError) and "long-winded: " in str(result)
        assert d.stats.sent == 1 and len(cache) == 0


def test_the_limit_is_validated() -> None:
    from instructgen import ConfigError

    assert DispatchConfig().max_reply_bytes == DEFAULT_MAX_REPLY_BYTES == 4 * 1024 * 1024
    with pytest.raises(ConfigError, match="max_reply_bytes"):
        DispatchConfig(max_reply_bytes=0)


# -- batch result files ------------------------------------------------------------------------


def test_a_batch_line_over_the_limit_fails_alone_and_is_not_sent_again(tmp_path: Path) -> None:
    with BatchWireServer() as server:
        server.responder = lambda c: ("many words " * 40_000) if "number 1" in c.prompt else "ok"
        requests = [Request.chat(f"question number {i}") for i in range(4)]
        batch = BatchConfig(idle=0.05, poll_interval=0.02, poll_max=0.05)
        engine = make_engine(server, "openai")
        with Cache(tmp_path / "cache.sqlite3") as cache:

            async def go() -> list[Any]:
                cfg = config(max_reply_bytes=64 * 1024, batch=batch)
                async with Dispatcher(engine, config=cfg, cache=cache) as d:
                    return await asyncio.gather(
                        *(d.complete(r, batchable=True) for r in requests),
                        return_exceptions=True,
                    )

            out = asyncio.run(go())
            assert isinstance(out[1], ReplyTooLargeError) and "65,536 bytes" in str(out[1])
            assert all(isinstance(out[i], Completion) for i in (0, 2, 3))
            assert server.batches_created == 1  # the oversized line is not batched again
            assert len(cache) == 3


def test_capped_lines_splits_across_chunks_and_skips_what_is_too_long() -> None:
    long_line = b'{"custom_id": "req-7", "response": "' + b"x" * 5000 + b'"}'
    data = b'{"a": 1}\r\n{"b"' + b": 2}\n" + long_line + b"\n\n" + b'{"c": 3}'

    async def lines(chunk: int, limit: int | None) -> list[tuple[bytes, bool]]:
        async def chunks() -> Any:
            for i in range(0, len(data), chunk):
                yield data[i : i + chunk]

        return [x async for x in capped_lines(chunks(), limit)]

    for size in (1, 7, 4096, len(data)):
        got = asyncio.run(lines(size, 1000))
        assert [ok for _, ok in got] == [True, True, False, True, True]
        assert got[0][0] == b'{"a": 1}' and got[1][0] == b'{"b": 2}'
        assert got[3][0] == b"" and got[4][0] == b'{"c": 3}'
        assert len(got[2][0]) <= 4096 and custom_id_in(got[2][0]) == "req-7"
        assert asyncio.run(lines(size, None))[2] == (long_line, True)


# -- the command line --------------------------------------------------------------------------


def test_generate_with_a_server_sending_oversized_replies(
    wire_server: WireServer, tmp_path: Path
) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text((SHARED / "data" / "seed_tasks.jsonl").read_text(encoding="utf-8"))
    wire_server.huge_bytes = 1024 * 1024
    wire_server.inject("endless", times=1000)
    args = [
        "generate",
        str(tasks),
        "--engine",
        "openai",
        "--base-url",
        wire_server.openai_base_url,
        "--out",
        str(tmp_path / "out"),
        "-n",
        "2",
        "--num-instructions",
        "4",
        "--max-reply-bytes",
        "64K",
    ]
    result = CliRunner().invoke(cli, args, env={"OPENAI_API_KEY": TEST_KEY})
    output = result.output
    assert result.exit_code == 1, output
    assert "Traceback" not in output
    assert "65,536 bytes" in output and "--max-reply-bytes" in output
    stats = json.loads((tmp_path / "out" / "run.json").read_text())["requests"]
    sent = stats["requests_sent"]
    # (requests still in flight when the bootstrap gave up are cancelled, not failed)
    assert sent >= 1 and set(stats["errors"]) == {"ReplyTooLargeError"}
    bodies = [c.key for c in wire_server.calls]
    assert stats["retries"] == 0 and len(set(bodies)) == len(bodies)  # none sent twice
    assert wait_for_handler(wire_server, "endless") < sent * (64 * 1024 + SOCKET_SLACK)


def test_the_option_takes_sizes_and_refuses_nonsense(tmp_path: Path) -> None:
    runner = CliRunner()
    for command in ("generate", "from-dir"):
        assert "--max-reply-bytes" in runner.invoke(cli, [command, "--help"]).output
    bad = runner.invoke(
        cli,
        ["generate", str(tmp_path / "t.jsonl"), "--engine", "openai", "--max-reply-bytes", "12"],
    )
    assert bad.exit_code == 2 and "below 1K" in bad.output
    from instructgen.cli._run import ByteSize

    size = ByteSize()
    assert [size.convert(v, None, None) for v in ("4194304", "512K", "8M", "8MB", "8MiB")] == [
        4194304,
        524288,
        8 * 1024 * 1024,
        8 * 1024 * 1024,
        8 * 1024 * 1024,
    ]


@pytest.mark.parametrize("wbits", [15, -15, 31])  # deflate (zlib), raw deflate, gzip
def test_compressed_bodies_are_decompressed_within_the_limit(wbits: int) -> None:
    """Through httpx itself: a compressed body under the limit arrives whole; a bomb that
    expands past it (100 kB on the wire, 64 MB inflated) stops at the limit."""
    import zlib

    import httpx

    from instructgen import limit_reply_size, reply_size_limit

    def compress(data: bytes) -> bytes:
        c = zlib.compressobj(9, zlib.DEFLATED, wbits)
        return c.compress(data) + c.flush()

    text = b"All work and no play. " * 5000
    bomb = compress(b"\0" * (64 * 1024 * 1024))
    encoding = "gzip" if wbits == 31 else "deflate"

    class Body(httpx.AsyncByteStream):  # sent in pieces, as a socket delivers it
        def __init__(self, data: bytes) -> None:
            self.data = data

        async def __aiter__(self) -> Any:
            for i in range(0, len(self.data), 16384):
                yield self.data[i : i + 16384]

    def answer(request: httpx.Request) -> httpx.Response:
        body = bomb if request.url.path == "/bomb" else compress(text)
        return httpx.Response(200, stream=Body(body), headers={"Content-Encoding": encoding})

    async def go() -> tuple[bytes, BaseException | None]:
        client = limit_reply_size(httpx.AsyncClient(transport=httpx.MockTransport(answer)))
        async with client:
            with reply_size_limit(1024 * 1024):
                small = (await client.get("http://server/text")).content
                try:
                    await client.get("http://server/bomb")
                except ReplyTooLargeError as exc:
                    return small, exc
        return small, None

    small, error = asyncio.run(go())
    assert small == text
    assert len(bomb) < 100_000
    assert isinstance(error, ReplyTooLargeError) and error.partial


def test_a_body_a_transport_read_already_is_still_refused() -> None:
    import httpx

    from instructgen import limit_reply_size, reply_size_limit

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * (2 * 1024 * 1024))  # read on creation

    async def go() -> BaseException | None:
        client = limit_reply_size(httpx.AsyncClient(transport=httpx.MockTransport(answer)))
        async with client:
            with reply_size_limit(1024 * 1024):
                try:
                    await client.get("http://server/")
                except ReplyTooLargeError as exc:
                    return exc
        return None

    error = asyncio.run(go())
    assert isinstance(error, ReplyTooLargeError) and error.received == 2 * 1024 * 1024

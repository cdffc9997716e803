"""A server that is gone stops the run: the circuit breaker opens when every attempt fails to
connect or times out, failures are logged aggregated, a refused connection is reported as
refused, and the CLI prints one line with the host, the counts and the command that resumes."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ENGINES, SHARED, TEST_KEY, make_engine
from selfinstruct_responder import respond
from wire_server import WireServer, closed_port

import instructgen
from instructgen import Request
from instructgen.cache import Cache
from instructgen.dispatch import DispatchConfig, Dispatcher
from instructgen.engine_errors import from_exception
from instructgen.engines import Completion, Engine
from instructgen.errors import (
    ConnectionFailedError,
    EngineError,
    ServerUnreachableError,
    TransientEngineError,
)

MAIN = "import sys\nfrom instructgen.cli import main\nmain(sys.argv[1:])\n"


def requests(n: int, tag: str = "q") -> list[Request]:
    return [Request.chat(f"{tag} {i}", max_tokens=20) for i in range(n)]


async def run_all(d: Dispatcher, reqs: list[Request]) -> list[Completion | EngineError]:
    async with d:
        return await d.complete_many(reqs)


@pytest.mark.parametrize("name", ENGINES)
def test_a_refused_port_is_reported_as_refused_at_once(name: str) -> None:
    port = closed_port()
    url = {
        "openai": f"http://127.0.0.1:{port}/v1",
        "openai-completions": f"http://127.0.0.1:{port}/v1",
        "cohere": f"http://127.0.0.1:{port}",
        "ai21": f"http://127.0.0.1:{port}/studio/v1",
    }[name]
    engine = instructgen.engine(name, api_key=TEST_KEY, base_url=url)
    start = time.monotonic()
    with pytest.raises(ServerUnreachableError) as err:
        asyncio.run(run_all(Dispatcher(engine, config=DispatchConfig(concurrency=4)), requests(8)))
    assert time.monotonic() - start < 10  # was: 30 attempts, reported as a timeout after 14 s
    e = err.value
    assert e.seconds < 3  # from the first refusal to the report (the rest is SDK import)
    assert e.reason == "connection refused" and e.host == f"127.0.0.1:{port}"
    assert e.exit_code == 1 and e.done == 0
    assert "cannot reach 127.0.0.1" in str(e) and "connection refused" in str(e)


def test_a_server_killed_mid_run_stops_the_run_and_keeps_the_cache(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache.sqlite3")
    config = DispatchConfig(concurrency=8, breaker_window=1.0, backoff_base=0.05)
    with WireServer() as server:
        server.latency = 0.01
        engine = make_engine(server, "openai")

        def killer() -> None:
            while sum(server.successes.values()) < 40:
                time.sleep(0.005)
            server.kill()
            killed.append(time.monotonic())

        killed: list[float] = []
        threading.Thread(target=killer, daemon=True).start()
        d = Dispatcher(engine, config=config, cache=cache)
        with pytest.raises(ServerUnreachableError) as err:
            asyncio.run(run_all(d, requests(2000)))
        stopped = time.monotonic()
        answered = sum(server.successes.values())
    e = err.value
    assert stopped - killed[0] < 10
    assert e.reason in ("connection refused", "connection reset")
    assert e.sent == d.stats.completed and e.cached == 0
    assert e.kept == len(cache) == d.stats.completed
    assert answered - 8 <= e.kept <= answered  # everything answered is kept, bar those in flight
    assert d.stats.sent < 2 * answered + 200  # no retry storm after the death
    cache.close()


def test_server_errors_do_not_open_the_breaker(wire_server: WireServer) -> None:
    """A server that answers, even with 500s, is alive: requests give up one by one."""
    wire_server.inject("500", times=1000)
    engine = make_engine(wire_server, "openai")
    config = DispatchConfig(concurrency=4, breaker_window=0.2, backoff_base=0.01, max_attempts=3)
    out = asyncio.run(run_all(Dispatcher(engine, config=config), requests(6)))
    assert all(isinstance(o, TransientEngineError) for o in out)
    assert not any(isinstance(o, ConnectionFailedError) for o in out)


def test_answers_between_failures_keep_the_breaker_closed(wire_server: WireServer) -> None:
    """Every other request is reset (30 times over more than a second): answers come in
    between, so the server is alive and the run goes on."""
    wire_server.latency = 0.05
    even = {f"q {i}" for i in range(0, 80, 2)}
    wire_server.inject("reset", times=30, match=lambda call: call.prompt in even)
    engine = make_engine(wire_server, "openai")
    config = DispatchConfig(concurrency=4, breaker_window=0.5, backoff_base=0.01)
    d = Dispatcher(engine, config=config)
    out = asyncio.run(run_all(d, requests(80)))
    assert all(isinstance(o, Completion) for o in out)
    assert d.stats.retried == 30


class ThirdPartyEngine(Engine):
    """A plugin's engine that lets its HTTP library's exceptions escape unclassified."""

    name = "third-party"
    needs_key = False

    def __init__(self, port: int) -> None:
        super().__init__(model="m", base_url=f"http://127.0.0.1:{port}")
        self.port = port

    async def acomplete(self, request: Request) -> Completion:
        _reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.close()
        return Completion(("never",))


def test_every_engine_gets_the_breaker() -> None:
    port = closed_port()
    with pytest.raises(ServerUnreachableError, match="connection refused") as err:
        asyncio.run(run_all(Dispatcher(ThirdPartyEngine(port)), requests(3)))
    assert err.value.host == f"127.0.0.1:{port}"


def test_warnings_are_aggregated_by_kind(caplog: pytest.LogCaptureFixture) -> None:
    """64 requests against a dead port: a handful of lines, not one per request or retry."""
    caplog.set_level(logging.WARNING, logger="instructgen")
    engine = instructgen.engine(
        "openai", api_key=TEST_KEY, base_url=f"http://127.0.0.1:{closed_port()}/v1"
    )
    config = DispatchConfig(concurrency=16, breaker_window=3.0, warn_interval=1.0)
    d = Dispatcher(engine, config=config)
    d._breaker.quick = 3.0  # keep retrying for 3 s to see the aggregation at work
    with pytest.raises(ServerUnreachableError):
        asyncio.run(run_all(d, requests(64)))
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert d.stats.retried >= 16  # the first wave, then one probe at a time
    assert d.stats.sent < 64  # a dead server sees a trickle, not every request
    assert 1 <= len(lines) <= 5, lines
    assert all("connection refused" in line for line in lines)
    assert any("attempts to retry" in line for line in lines)


def test_refused_inside_a_misnamed_timeout_is_refused() -> None:
    class ConnectTimeout(Exception):  # the aiohttp transport's name for a refused connection
        pass

    try:
        try:
            raise ConnectionRefusedError(111, "Connect call failed")
        except ConnectionRefusedError as inner:
            raise ConnectTimeout("Cannot connect to host") from inner
    except ConnectTimeout as exc:
        error = from_exception(exc, engine="x")
    assert isinstance(error, ConnectionFailedError) and error.reason == "connection refused"
    assert from_exception(TimeoutError()).reason == "timed out"  # type: ignore[attr-defined]


def test_the_error_survives_pickling() -> None:
    import pickle

    e = ServerUnreachableError(
        host="h:1", reason="connection refused", sent=3, cached=2, kept=5, seconds=10.0
    )
    again = pickle.loads(pickle.dumps(e))
    assert str(again) == str(e) and again.done == 5


# -- the CLI -------------------------------------------------------------------------------


def generate_cmd(tasks: Path, base_url: str, out: Path, *options: str) -> list[str]:
    return [
        *(sys.executable, "-c", MAIN, "generate", str(tasks)),
        *("--engine", "openai", "--base-url", base_url, "--out", str(out)),
        *options,
    ]


@pytest.fixture
def tasks(tmp_path: Path) -> Path:
    path = tmp_path / "t.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", path)
    return path


def env() -> dict[str, str]:
    return {**os.environ, "OPENAI_API_KEY": TEST_KEY}


def test_cli_a_base_url_that_is_not_a_url_exits_2_at_once(tasks: Path, tmp_path: Path) -> None:
    start = time.monotonic()
    r = subprocess.run(
        generate_cmd(tasks, "not a url", tmp_path / "out"),
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert time.monotonic() - start < 10  # no attempts at all (was 30 over 16 s)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "'not a url' is not a URL" in lines[0] and "http://" in lines[0]


def test_cli_a_refused_port_exits_1_fast_saying_refused(tasks: Path, tmp_path: Path) -> None:
    port = closed_port()
    start = time.monotonic()
    r = subprocess.run(
        generate_cmd(tasks, f"http://127.0.0.1:{port}/v1", tmp_path / "out", "-n", "20"),
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1, r.stderr
    assert time.monotonic() - start < 15
    last = r.stderr.strip().splitlines()[-1]
    assert f"cannot reach 127.0.0.1:{port}: connection refused" in last
    assert "timed out" not in r.stderr
    assert "raise num_instructions" not in r.stderr and "--num-instructions" not in r.stderr


def test_cli_server_killed_mid_run(tasks: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with WireServer() as server:
        server.responder = respond
        server.latency = 0.02
        cmd = generate_cmd(
            tasks,
            server.openai_base_url,
            out,
            *("-n", "200", "--num-instructions", "200", "--concurrency", "16"),
        )
        proc = subprocess.Popen(
            cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 120
        while sum(server.successes.values()) < 60 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill()
        killed = time.monotonic()
        _, err = proc.communicate(timeout=120)
        exited = time.monotonic() - killed
        lines = err.strip().splitlines()
        assert proc.returncode == 1, err
        assert exited < 60, exited
        assert len(lines) <= 25, err
        last = lines[-1]
        assert last.startswith(f"error: cannot reach 127.0.0.1:{server.port}: "), last
        assert "requests done" in last and "answers kept in the cache" in last
        assert "Traceback" not in err and "raise num_instructions" not in err
        resume = last.split("resume with: ", 1)[1]
        argv = shlex.split(resume)
        assert argv[0] == "instructgen" and argv[1:] == cmd[3:]
        paid = sum(server.successes.values())

        server.revive()
        server.latency = 0
        done = subprocess.run(
            [sys.executable, "-c", MAIN, *argv[1:]],
            env=env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert sum(server.successes.values()) > paid
        assert len(server.paid_twice()) <= 16  # at most what was in flight at the death
    ds: Any = instructgen.InstructionDataset.load(out)
    assert len(ds) == 200


def test_failed_requests_are_named_as_the_cause_not_the_filters(
    wire_server: WireServer,
    tasks: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Instance requests that fail (a 400 for each) leave the dataset short: the warning says
    requests failed, not "raise --num-instructions"."""
    from click.testing import CliRunner

    from instructgen.cli import cli

    caplog.set_level(logging.WARNING, logger="instructgen")
    wire_server.responder = respond
    instances = ("Come up with examples", "Given the classification task definition")
    wire_server.inject(
        "400", times=1000, match=lambda call: any(p in call.prompt for p in instances)
    )
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    r = CliRunner().invoke(
        cli,
        [
            *("generate", str(tasks), "--engine", "openai"),
            *("--base-url", wire_server.openai_base_url, "--out", str(tmp_path / "o")),
            *("-n", "5", "--num-instructions", "5"),
        ],
    )
    assert r.exit_code == 1, r.stderr
    said = [rec.getMessage() for rec in caplog.records if rec.levelno >= logging.WARNING]
    assert any("requests failed" in m for m in said), said
    assert not any("raise num_instructions" in m for m in said), said
    warnings = [m for m in said if "HTTP 400" in m]
    assert 1 <= len(warnings) <= 2, said  # aggregated: not one line per failed request


def test_from_dir_against_a_refused_port_json(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("A short document about tea. " * 40, encoding="utf-8")
    port = closed_port()
    r = subprocess.run(
        [
            *(sys.executable, "-c", MAIN, "from-dir", str(docs), "--engine", "openai"),
            *("--base-url", f"http://127.0.0.1:{port}/v1", "--out", str(tmp_path / "out")),
            "--json",
        ],
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1, r.stderr
    payload = json.loads(r.stdout)
    assert payload["error"] == "ServerUnreachableError"
    assert payload["host"] == f"127.0.0.1:{port}" and payload["reason"] == "connection refused"
    assert payload["requests_done"] == 0 and payload["answers_kept"] == 0
    assert payload["resume"].startswith("instructgen from-dir ")


# -- held requests and unlucky failures are not an unreachable server ------------------------


def test_a_failure_while_others_were_answered_is_not_evidence() -> None:
    """Connection failures are weighed against answers over the same period: an attempt sent
    before the server's last answer (it waited on a held request while others were answered)
    never counts, however many there are and however long ago they were sent."""
    from instructgen.dispatch import _Breaker

    def reset() -> ConnectionFailedError:
        return ConnectionFailedError("reset", reason="connection reset", engine="x")

    b = _Breaker(window=10.0)
    b.success()
    long_ago = time.monotonic() - 100  # sent 100 s ago, before the answer: held, not gone
    assert not any(b.failure(reset(), long_ago) for _ in range(50))
    assert b.failures == 0 and not b.should_open()

    later = time.monotonic() + 0.001  # sent after the last answer: nothing answered since
    assert b.failure(reset(), later) and b.failure(reset(), later)
    assert not b.should_open()  # two, and not for 10 s
    b.since = time.monotonic() - 11  # as if the first of them had been sent 11 s ago
    assert b.failure(reset(), later) and b.should_open()

    b = _Breaker(window=10.0)
    b.success()
    for _ in range(2):
        b.failure(reset(), time.monotonic() + 0.001)
    b.failure(TransientEngineError("HTTP 500", engine="x", status=500), time.monotonic())
    assert b.failures == 0 and b.since is None  # an error status is an answer: alive


def test_a_probe_is_not_held_back_by_requests_sent_before() -> None:
    """After a connection failure one request at a time probes the server; requests already
    in flight (perhaps held by a slow server for 30 s) do not block that probe."""
    from instructgen.dispatch import _AdaptiveGate

    async def main() -> None:
        gate = _AdaptiveGate(4)
        held = [await gate.acquire() for _ in range(2)]  # two requests held by the server
        assert held == [False, False]
        gate.on_connection_failure(0.0)
        probe = await asyncio.wait_for(gate.acquire(), 1)  # goes at once
        assert probe is True and gate.in_flight == 3
        second = asyncio.ensure_future(gate.acquire())
        await asyncio.sleep(0.01)
        assert not second.done()  # one probe at a time
        gate.release(probe)
        assert await asyncio.wait_for(second, 1) is True
        gate.on_answer()  # the server answered: probing ends
        assert await asyncio.wait_for(gate.acquire(), 1) is False
        assert gate.in_flight == 4 and gate.probes == 1

    asyncio.run(main())


def test_held_requests_then_resets_while_nothing_else_is_in_flight(
    wire_server: WireServer,
) -> None:
    """The bootstrap's worst case: two requests held by the server (then dropped) while it
    answers the others, nothing else left in flight when they fail, and their first retries
    reset. The server is answering: the run finishes, every request answered."""
    wire_server.latency = 0.005
    held = {"q 0", "q 1"}
    wire_server.inject("hang", times=2, retry_after=1.0, match=lambda c: c.prompt in held)
    wire_server.inject("reset", times=2, match=lambda c: c.prompt in held)
    engine = make_engine(wire_server, "openai")
    # Before: the two held failures and one reset within the window opened the breaker.
    config = DispatchConfig(concurrency=16, breaker_window=0.2, backoff_base=0.4)
    d = Dispatcher(engine, config=config)
    out = asyncio.run(run_all(d, requests(12)))
    assert all(isinstance(o, Completion) for o in out), out
    assert wire_server.failures["hang"] == 2 and wire_server.failures["reset"] == 2
    assert d.stats.errors["ConnectionFailedError"] == 4 and d.stats.retried == 4
    assert d._breaker.failures == 0  # the held ones were never evidence, the answer cleared


# -- a server that accepts and never answers -------------------------------------------------


def test_the_timeout_has_one_owner() -> None:
    """The dispatcher's deadline is the engine's timeout (the one the SDK gets) unless the
    config sets one: a request never has two deadlines."""
    url = f"http://127.0.0.1:{closed_port()}/v1"
    engine = instructgen.engine("openai", api_key=TEST_KEY, base_url=url, timeout=7.0)
    assert Dispatcher(engine).timeout == 7.0
    assert Dispatcher(engine, config=DispatchConfig(timeout=3.0)).timeout == 3.0


def test_cli_a_server_that_never_answers_is_given_up_after_one_timeout(
    tasks: Path, tmp_path: Path
) -> None:
    """Every request is accepted and held: the run stops when the first attempts time out
    (they waited a whole --timeout and nothing was answered), without retrying them. Before,
    each request was sent twice and the run stopped after two timeouts."""
    timeout = 3.0
    with WireServer() as server:
        server.inject("hang", times=10_000, retry_after=4 * timeout)
        start = time.monotonic()
        r = subprocess.run(
            generate_cmd(
                tasks,
                server.openai_base_url,
                tmp_path / "out",
                *("-n", "20", "--timeout", str(timeout), "--concurrency", "8"),
            ),
            env=env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        elapsed = time.monotonic() - start
        prompts = [call.prompt for call in server.requests]
    assert r.returncode == 1, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert f"cannot reach 127.0.0.1:{server.port}: timed out" in last, r.stderr
    assert "resume with: instructgen generate" in last and "Traceback" not in r.stderr
    # The cause: one attempt per request (the bootstrap's first requests), none retried.
    assert len(prompts) >= 3 and len(set(prompts)) == len(prompts), (len(prompts), r.stderr)
    assert elapsed < 2 * timeout + 30  # one timeout and start-up (generous: a loaded machine)

"""The server goes away while the Self-Instruct bootstrap has requests in flight and kept
instructions have their classification and instance requests in flight: the run stops with
``ServerUnreachableError`` (never a ``CancelledError``), and the CLI prints one plain line with
the command that resumes, exit 1, no traceback."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import SHARED, TEST_KEY, make_engine
from selfinstruct_responder import respond
from wire_server import WireCall, WireServer

from instructgen import InstructionDataset, Request
from instructgen.dispatch import DispatchConfig, Dispatcher
from instructgen.engines import Completion, Engine
from instructgen.errors import (
    ConnectionFailedError,
    ServerUnreachableError,
    TransientEngineError,
)
from instructgen.selfinstruct.pipeline import run_self_instruct
from instructgen.tasks import load_tasks

MAIN = "import sys\nfrom instructgen.cli import main\nmain(sys.argv[1:])\n"


def dies_after(server: WireServer, answers: int) -> None:
    """The server answers ``answers`` requests like a model, then resets every connection."""
    lock = threading.Lock()
    left = [answers]

    def responder(call: WireCall) -> str | list[str]:
        with lock:
            left[0] -= 1
            if left[0] == 0:
                server.inject("reset", times=10**6)
        return respond(call)

    server.responder = responder


@pytest.fixture
def tasks(tmp_path: Path) -> Path:
    path = tmp_path / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", path)
    return path


@pytest.mark.parametrize("answers", [2, 3, 4, 6, 8, 12, 16, 24, 32, 48])
def test_the_breaker_opening_mid_bootstrap_raises_server_unreachable(
    wire_server: WireServer, tasks: Path, answers: int
) -> None:
    wire_server.latency = 0.01
    dies_after(wire_server, answers)
    engine = make_engine(wire_server, "openai")
    config = DispatchConfig(concurrency=8, breaker_window=0.3, backoff_base=0.02)
    with pytest.raises(ServerUnreachableError) as err:
        asyncio.run(
            InstructionDataset.agenerate_dataset(
                tasks, engine, 100, 100, cache=False, config=config
            )
        )
    assert err.value.reason == "connection reset" and err.value.sent == answers


class GoneAfterFirstAnswer(Engine):
    """A server that answers the first bootstrap request and then refuses everything: the next
    bootstrap request (window 1: the only one) is refused at once and retried alone, the kept
    instructions' classification requests are answered 503 a moment later and told to wait.
    So when the head's retry opens the breaker, follow-ups are failing alongside it: the
    interleaving that turned the breaker's error into a bare CancelledError."""

    name = "gone-after-first-answer"
    needs_key = False

    def __init__(self) -> None:
        super().__init__(model="m", base_url="http://127.0.0.1:9/v1")
        self.answered = False

    async def acomplete(self, request: Request) -> Completion:
        messages: list[dict[str, Any]] = list(request.as_messages())
        call = WireCall("openai", "chat", "/v1/chat/completions", {}, None, messages)
        bootstrap = "Come up with a series of tasks" in call.prompt
        if bootstrap and not self.answered:
            self.answered = True
            await asyncio.sleep(0.01)
            out = respond(call)
            return Completion((out if isinstance(out, str) else out[0],))
        if not bootstrap:  # an overloaded front answering 503 "retry in 30 s"
            await asyncio.sleep(0.01)
            raise TransientEngineError("HTTP 503", engine=self.name, status=503, retry_after=30)
        raise ConnectionFailedError("refused", reason="connection refused", engine=self.name)


def test_follow_ups_failing_while_the_run_stops_do_not_cancel_it(tasks: Path) -> None:
    async def main() -> None:
        config = DispatchConfig(concurrency=8, breaker_window=0.2, backoff_base=0.1)
        async with Dispatcher(GoneAfterFirstAnswer(), config=config) as d:
            await run_self_instruct(load_tasks(tasks), d, num_instructions=50, window=1)

    with pytest.raises(ServerUnreachableError) as err:
        asyncio.run(asyncio.wait_for(main(), 60))
    assert err.value.reason == "connection refused" and err.value.sent == 1  # the one answer


def test_cli_the_breaker_opening_mid_bootstrap_is_one_line(tasks: Path, tmp_path: Path) -> None:
    with WireServer() as server:
        server.latency = 0.01
        dies_after(server, 8)
        cmd = [
            *(sys.executable, "-c", MAIN, "generate", str(tasks), "--engine", "openai"),
            *("--base-url", server.openai_base_url, "--out", str(tmp_path / "out")),
            *("-n", "100", "--num-instructions", "100"),
        ]
        r = subprocess.run(
            cmd,
            env={**os.environ, "OPENAI_API_KEY": TEST_KEY},
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and "CancelledError" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot reach 127.0.0.1:{server.port}: connection reset"), last
    assert "resume with: instructgen generate" in last


def test_a_run_cancelled_from_inside_ends_with_one_line(tmp_path: Path) -> None:
    """Whatever cancels a run from inside (not Ctrl-C), the command ends with one plain line,
    the resume command and exit 1; --debug shows the traceback."""
    import click
    from click.testing import CliRunner

    from instructgen.cli._common import handles_errors

    @click.group()
    @click.option("--debug", is_flag=True)
    @click.pass_context
    def cli(ctx: click.Context, debug: bool) -> None:
        ctx.obj = {"debug": debug, "argv": ["generate", "t.jsonl", "--out", "o"]}

    @cli.command()
    @handles_errors
    def generate() -> None:
        async def run() -> None:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()  # as a pipeline's own clean-up would
            await asyncio.sleep(1)

        asyncio.run(run())

    r = CliRunner().invoke(cli, ["generate"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: the run was cancelled before it finished")
    assert lines[0].endswith("resume with: instructgen generate t.jsonl --out o")
    with pytest.raises(asyncio.CancelledError):
        CliRunner().invoke(cli, ["--debug", "generate"])

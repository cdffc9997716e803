"""Kill a command with SIGKILL at random moments, run it again to the end, and compare its
dataset with an uninterrupted run's: what the methods' resume tests share."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from wire_server import WireCall, WireServer

MAIN = """
import sys
from instructgen.cli import main
main(sys.argv[1:])
"""


@dataclass
class Resumed:
    reference: bytes  # dataset.jsonl of the uninterrupted run
    resumed: bytes  # dataset.jsonl of the run killed at ``moments``, then run to the end
    moments: list[int]  # answers the server had given at each kill
    paid_twice: list[str]  # requests the killed runs' server answered more than once


def kill_then_resume(
    args: Sequence[str],
    work: Path,
    env: Mapping[str, str],
    responder: Callable[[WireCall], str],
    *,
    kills: int,
    latency: float,
) -> Resumed:
    """``instructgen ARGS --base-url ... --out ...`` (ARGS ending with ``--format jsonl``)
    once uninterrupted, then killed ``kills`` times after a random number of answers (the
    server answering after ``latency`` s so that requests are in flight) and run to the end."""

    def command(server: WireServer, out: Path) -> list[str]:
        url = server.openai_base_url
        return [sys.executable, "-c", MAIN, *args, "--base-url", url, "--out", str(out)]

    with WireServer() as ref:
        ref.responder = responder
        subprocess.run(
            command(ref, work / "ref"), env=env, check=True, capture_output=True, timeout=300
        )
        total = len(ref.calls)
    moments = sorted(random.Random().sample(range(1, total - 1), kills))
    out = work / "killed"
    with WireServer() as server:
        server.responder = responder
        server.latency = latency
        cmd = command(server, out)
        for moment in moments:
            proc = subprocess.Popen(
                cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            deadline = time.monotonic() + 60
            while sum(server.successes.values()) < moment and time.monotonic() < deadline:
                time.sleep(0.002)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            assert not (out / "dataset.jsonl").exists(), moments  # it died mid-run
        server.latency = 0
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        paid_twice = server.paid_twice()
    return Resumed(
        (work / "ref" / "dataset.jsonl").read_bytes(),
        (out / "dataset.jsonl").read_bytes(),
        moments,
        paid_twice,
    )

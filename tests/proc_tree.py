"""The processes a test started, found through Linux /proc: every process below a pid (the
workers and the programs they run), so that a test can check none outlived a run and end
whatever did, whatever happens."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

HAS_PROC = Path("/proc/self/stat").exists()


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first); None when gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def descendants(root: int) -> dict[int, str]:
    """Every process below ``root`` now, with its start time (which tells a reused pid
    apart); empty without /proc."""
    if not HAS_PROC:
        return {}
    parents: dict[int, int] = {}
    starts: dict[int, str] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (fields := _stat(int(name))) is not None:
            parents[int(name)], starts[int(name)] = int(fields[1]), fields[19]
    found: dict[int, str] = {}
    for pid in parents:
        up, hops = parents[pid], 0
        while up > 1 and hops < 64:
            if up == root:
                found[pid] = starts[pid]
                break
            up, hops = parents.get(up, 0), hops + 1
    return found


def running(pid: int, start: str) -> bool:
    """Whether that process (same pid, same start time) still runs; a zombie does not."""
    fields = _stat(pid)
    return fields is not None and fields[19] == start and fields[0] not in ("Z", "X")


def survivors(watched: dict[int, str], within: float = 5.0) -> set[int]:
    """The watched processes still running after up to ``within`` seconds."""
    gone = time.monotonic() + within
    while True:
        left = {pid for pid, start in watched.items() if running(pid, start)}
        if not left or time.monotonic() >= gone:
            return left
        time.sleep(0.05)


def end(watched: dict[int, str]) -> None:
    """SIGKILL whichever of the watched processes still runs."""
    for pid, start in watched.items():
        if running(pid, start):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

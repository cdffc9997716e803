"""Ends what a run's local Ray instance left running when the run is killed (kill -9, a crash).

Ray ends most of its processes with the driver (the GCS server, the raylet, its workers), but
its dashboard and runtime-env agents outlive a killed driver by a minute: they try to tell the
dead driver that the raylet died and wait 60 s for an answer. This script, started by the
executor next to a local instance, looks twice a second at every process below the run
(through Linux ``/proc``) and remembers it with its start time; when its stdin reaches the end
without the word ``stop`` (the run died; the run writes ``stop`` when it shuts Ray down
itself), it ends every process it remembers that still runs. It never touches a process that
was not below the run: a pid is only killed with the start time it had then.

    python reaper.py RUN_PID      (stdin: a pipe from the run)

Standard library only: it runs as a file, without importing the plugin.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys

_LOOK = 0.5  # seconds between two looks at the run's processes


def _stat(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, start time, state) of a process; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    return int(fields[1]), fields[19], fields[0]


def _below(root: int, seen: dict[int, str]) -> None:
    """Add every process below ``root`` now to ``seen`` (pid: start time), and drop from it
    those that have ended (a process reparented away from the run stays)."""
    parents: dict[int, int] = {}
    starts: dict[int, str] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (found := _stat(int(name))) is not None:
            parents[int(name)], starts[int(name)] = found[0], found[1]
    for pid in [p for p, start in seen.items() if starts.get(p) != start]:
        del seen[pid]
    for pid in parents:
        up, hops = parents[pid], 0
        while up > 1 and hops < 64:
            if up == root:
                seen[pid] = starts[pid]
                break
            up, hops = parents.get(up, 0), hops + 1


def main(run: int) -> None:
    # A Ctrl-C at the terminal reaches this process too; the run handles it and says "stop".
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    me = os.getpid()
    seen: dict[int, str] = {}
    said = b""
    while True:
        _below(run, seen)
        seen.pop(me, None)
        ready, _, _ = select.select([sys.stdin.buffer], [], [], _LOOK)
        if not ready:
            continue
        data = os.read(sys.stdin.fileno(), 64)
        said += data
        if data:
            continue
        if said.strip() == b"stop":  # the run ended Ray itself
            return
        for pid, start in seen.items():
            found = _stat(pid)
            if found is not None and found[1] == start and found[2] not in ("Z", "X"):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        return


if __name__ == "__main__":
    main(int(sys.argv[1]))

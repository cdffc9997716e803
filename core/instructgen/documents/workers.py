"""The extraction worker pool: processes that each read one file at a time, with a real
per-file time limit (counted from the extractor's last progress report) and memory limit
(measured through Linux ``/proc`` for the worker's whole process group), replaced when they die,
time out, go over the limit or have read ``recycle_after`` files. A worker ends, with the
programs it started, when the process that started it dies, whatever killed it."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import multiprocessing as mp
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

import instructgen.extractor as extractor_api
import instructgen.plugins as plugins
from instructgen.documents.routing import extract_one
from instructgen.documents.types import (
    CRASHED,
    ExtractOptions,
    ExtractResult,
    memory_reason,
    timeout_reason,
)

log = logging.getLogger("instructgen.documents")

__all__ = ["group_memories", "group_memory", "run_pool"]

_LOOK_EVERY = 0.5  # seconds between two looks at the workers' memory and progress
_STOP_LOOK = 0.2  # seconds between two looks at a run's stop signal
_PARENT_LOOK = 0.5  # seconds between two looks, in a worker, at whether its parent lives
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_PARENT_DIED = signal.SIGHUP  # what Linux sends a worker when its parent dies

Job = tuple[int, str, str, int]  # (index, path, rel, size)


def _worker_main(
    conn: Connection,
    progress: Any = None,
    chunk_size: int | None = None,
    parent: int | None = None,
) -> None:
    # Its own process group: killing the group on a timeout or over the memory limit also ends
    # the programs the extractor started (tesseract, soffice), and a Ctrl-C at the terminal
    # reaches only the caller, which stops the workers itself.
    with contextlib.suppress(OSError, AttributeError):
        os.setpgid(0, 0)
    _die_with_parent(os.getppid() if parent is None else parent, conn)
    # Objects inherited through fork are left out of garbage collection here: a collection
    # would write to every one of them and so copy the caller's whole heap into the worker
    # (measured: 1.1 GB for a caller holding 6 million small lists), which also counts
    # against the memory limit.
    gc.freeze()
    extractor_api._progress = progress  # report_progress() counts here; the run watches it
    # Libraries print notices; keep them off the parent's stdout (it may be --json output).
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    sys.stderr = sys.stdout
    logging.disable(logging.WARNING)
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        if job[0] == "init":  # a worker not forked from the caller: its environment, plugins
            _init_worker(job[1], job[2])
            continue
        idx, path, rel, size = job
        try:
            res = extract_one(path, rel, size, chunk_size)
        except BaseException as exc:
            res = ExtractResult(
                rel=rel,
                path=path,
                size=size,
                skip=f"extraction crashed: {type(exc).__name__}: {exc}"[:300],
            )
        conn.send((idx, res))


def _end_group() -> None:
    """End this worker and every program it started (its process group), at once."""
    with contextlib.suppress(OSError, AttributeError):
        if os.getpgrp() == os.getpid():  # never the group of the process that started us
            os.killpg(os.getpid(), signal.SIGKILL)
    os._exit(1)


def _die_with_parent(parent: int, conn: Connection) -> None:
    """Make this worker end (with its process group) when the process that started it dies,
    whatever kills it.

    On Linux the kernel signals the worker when ``parent`` dies (``PR_SET_PDEATHSIG``); the
    signal also comes when the *thread* that started the worker ends, so the handler ends the
    worker only once ``getppid()`` says its parent is really gone, and ``getppid()`` is checked
    right after asking, in case the parent died before. Everywhere, a thread looks every
    ``_PARENT_LOOK`` seconds at ``getppid()`` and at the pipe to the caller, which hangs up
    when the caller dies (macOS has no parent-death signal; with the ``forkserver`` start
    method the parent is the fork server, which lives as long as its workers do; and an
    extractor may hold the main thread in native code, where the handler cannot run).
    SIGTERM ends the worker's group too, instead of the handler inherited from the caller
    through fork (which would ignore it)."""

    def on_parent_signal(signum: int, frame: Any) -> None:
        if os.getppid() != parent:
            _end_group()

    def on_term(signum: int, frame: Any) -> None:
        _end_group()

    with contextlib.suppress(ValueError, OSError):  # inherited from an asyncio caller
        signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, on_term)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            signal.signal(_PARENT_DIED, on_parent_signal)
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(_PARENT_DIED), 0, 0, 0)
    if os.getppid() != parent:  # died before the kernel was asked to tell us
        _end_group()
    # The caller's end of the pipe is in the caller only (and, after fork, in workers forked
    # later, where getppid() covers it): a hang-up means the caller is gone. Registered for
    # no event, poll() reports only hang-ups and errors, and reads nothing.
    hangup = None
    if hasattr(select, "poll"):
        hangup = select.poll()
        hangup.register(conn.fileno(), 0)

    def watch() -> None:
        while True:
            time.sleep(_PARENT_LOOK)
            if os.getppid() != parent or (hangup is not None and hangup.poll(0)):
                _end_group()

    threading.Thread(target=watch, name="instructgen-parent-watch", daemon=True).start()


def _expected_parent(ctx: Any) -> int | None:
    """The pid a new worker's ``getppid()`` returns while the caller lives: the caller; None
    with the ``forkserver`` start method (the worker's parent is then the fork server, and the
    worker takes its parent at start)."""
    return None if ctx.get_start_method() == "forkserver" else os.getpid()


def _init_worker(env: dict[str, str], blobs: list[tuple[str, bytes]]) -> None:
    import pickle

    os.environ.clear()
    os.environ.update(env)
    plugins.reset()
    for name, blob in blobs:
        with contextlib.suppress(Exception):  # already present, or its module moved
            plugins.register_plugin(pickle.loads(blob), name=name)


# Native runtimes whose thread pools do not survive fork: a child forked after one of them ran
# waits forever for threads that were not copied (seen with CTranslate2 after an in-process
# transcription; GNU OpenMP, which torch and onnxruntime use, behaves the same).
_FORK_UNSAFE = ("ctranslate2", "onnxruntime", "torch", "tensorflow")


def _start_method() -> str:
    """How extraction workers start: ``INSTRUCTGEN_WORKER_START`` (fork, forkserver, spawn)
    when set; else ``fork`` (fast; in-process plugins come along as they are) unless the
    calling process has loaded a runtime in ``_FORK_UNSAFE``; then ``forkserver``, which gets
    the caller's environment and picklable in-process plugins but, like any non-fork start,
    imports a script's ``__main__`` again (scripts need the ``if __name__ == "__main__":``
    guard then)."""
    chosen = os.environ.get("INSTRUCTGEN_WORKER_START")
    if chosen in ("fork", "forkserver", "spawn"):
        return chosen
    if not sys.platform.startswith("linux"):
        return "spawn"
    return "forkserver" if any(m in sys.modules for m in _FORK_UNSAFE) else "fork"


def _init_message() -> tuple[str, dict[str, str], list[tuple[str, bytes]]]:
    import pickle

    blobs = []
    for name, plugin in plugins.in_process_plugins():
        try:
            blobs.append((name, pickle.dumps(plugin)))
        except Exception as exc:  # defined in __main__ of a notebook, holds a lock, ...
            log.warning("in-process plugin %s cannot reach extraction workers: %s", name, exc)
    return ("init", dict(os.environ), blobs)


def _private_bytes(pid: int) -> int:
    """Memory only this process holds (shared libraries and pages still shared with the parent
    after fork are not counted); resident size where that is not available."""
    try:
        total = 0
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith((b"Private_Clean:", b"Private_Dirty:")):
                    total += int(line.split()[1]) * 1024
        return total
    except (OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def group_memory(pgid: int) -> int | None:
    """Memory held by the processes of process group ``pgid`` (Linux ``/proc``; None
    elsewhere, or when the group has no process)."""
    return group_memories({pgid}).get(pgid)


def group_memories(pgids: set[int]) -> dict[int, int]:
    """Memory held by each of these process groups, in one pass over ``/proc`` (empty where
    there is no ``/proc``); a group with no process is left out."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return {}
    totals: dict[int, int] = {}
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
            # after "(comm)": state, ppid, pgrp, ...
            pgrp = int(stat[stat.rfind(b")") + 2 :].split()[2])
            if pgrp in pgids:
                totals[pgrp] = totals.get(pgrp, 0) + _private_bytes(int(name))
        except (OSError, ValueError, IndexError):  # gone meanwhile
            continue
    return totals


class _Worker:
    def __init__(
        self, ctx: Any, init: tuple[Any, ...] | None, chunk_size: int | None = None
    ) -> None:
        """``init``: the message a worker that was not forked from the caller needs first;
        ``chunk_size``: the worker also chunks each text."""
        self.conn, child = ctx.Pipe()
        self.progress = ctx.Value("Q", 0, lock=False)  # report_progress() calls, this worker
        self.proc = ctx.Process(
            target=_worker_main,
            args=(child, self.progress, chunk_size, _expected_parent(ctx)),
            daemon=True,
        )
        self.proc.start()
        child.close()
        if init is not None:
            self.conn.send(init)
        self.job: tuple[int, str, str, int] | None = None
        self.started = self.deadline = 0.0
        self.seen = 0  # the progress count last looked at
        self.moved = False  # whether the current file reported progress
        self.done = 0

    def submit(self, job: tuple[int, str, str, int], timeout: float) -> None:
        self.job, self.started = job, time.monotonic()
        self.deadline, self.seen, self.moved = self.started + timeout, self.progress.value, False
        self.conn.send(job)

    def look(self, now: float, timeout: float) -> None:
        """A file that reported progress since the last look gets ``timeout`` more seconds."""
        count = self.progress.value
        if count != self.seen:
            self.seen, self.moved, self.deadline = count, True, now + timeout

    def expired(self, now: float, timeout: float) -> bool:
        self.look(now, timeout)
        return now >= self.deadline

    def kill(self) -> None:
        pid = self.proc.pid
        if pid is not None and hasattr(os, "killpg"):
            with contextlib.suppress(OSError):  # not (yet) its own group: the worker alone
                os.killpg(pid, signal.SIGKILL)
        self.proc.kill()
        self.proc.join(5)
        self.conn.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
        self.conn.close()


def _skipped(job: tuple[int, str, str, int], why: str) -> ExtractResult:
    return ExtractResult(rel=job[2], path=job[1], size=job[3], skip=why)


def run_pool(
    jobs: Sequence[tuple[int, str, str, int]],
    options: ExtractOptions,
    stop: threading.Event | None = None,
) -> Iterator[tuple[int, ExtractResult]]:
    """``(job index, result)`` for every job, as the worker processes finish them. Once
    ``stop`` is set the pool ends within a fraction of a second, killing the workers still
    reading (a run that was interrupted does not wait for the file being read)."""
    ctx = mp.get_context(_start_method())
    init = None if ctx.get_start_method() == "fork" else _init_message()  # once per pool

    def new_worker() -> _Worker:
        return _Worker(ctx, init, options.chunk_size)

    pending = list(reversed(jobs))
    workers = [new_worker() for _ in range(min(options.workers, len(jobs)))]

    def start(i: int) -> None:
        """Send worker ``i`` the next file (to a fresh worker if it died while idle)."""
        job = pending.pop()
        try:
            workers[i].submit(job, options.timeout)
        except OSError:  # its pipe is closed: killed while waiting (e.g. by the OOM killer)
            workers[i].kill()
            workers[i] = new_worker()
            workers[i].submit(job, options.timeout)

    try:
        for i in range(len(workers)):
            if pending:
                start(i)
        limit = options.max_memory_mb * 1024 * 1024
        next_look = time.monotonic() + _LOOK_EVERY
        while any(w.job is not None for w in workers):
            busy = [w for w in workers if w.job is not None]
            until = min(min(w.deadline for w in busy), next_look)
            wait_for = max(0.0, until - time.monotonic())
            if stop is not None:
                wait_for = min(wait_for, _STOP_LOOK)
            ready = wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout=wait_for)
            if stop is not None and stop.is_set():
                return  # the finally below kills the workers still reading
            now = time.monotonic()
            over: set[int] = set()
            if now >= next_look:  # (progress is looked at by expired() below, every round)
                next_look = now + _LOOK_EVERY
                if limit:  # each worker is its own process group (see _worker_main)
                    used = group_memories({w.proc.pid for w in busy if w.proc.pid is not None})
                    over = {
                        id(w)
                        for w in busy
                        if w.conn not in ready and used.get(w.proc.pid or -1, 0) > limit
                    }
            for i, w in enumerate(workers):
                if w.job is None:
                    continue
                job = w.job
                if w.conn in ready:
                    try:
                        idx, res = w.conn.recv()
                    except (EOFError, OSError):  # the worker died: its pipe closed
                        w.kill()
                        yield job[0], _skipped(job, CRASHED)
                        workers[i] = w = new_worker()
                    else:
                        w.job = None
                        w.done += 1
                        yield idx, res
                        if w.done >= options.recycle_after:  # bound memory growth
                            w.stop()
                            workers[i] = w = new_worker()
                elif w.proc.sentinel in ready or not w.proc.is_alive():
                    w.kill()
                    yield job[0], _skipped(job, CRASHED)
                    workers[i] = w = new_worker()
                elif id(w) in over or w.expired(now, options.timeout):
                    w.kill()
                    if id(w) in over:
                        why = memory_reason(options.max_memory_mb)
                    elif w.moved:
                        why = timeout_reason(options.timeout, after=now - w.started)
                    else:
                        why = timeout_reason(options.timeout)
                    yield job[0], _skipped(job, why)
                    workers[i] = w = new_worker()
                if w.job is None and pending:
                    start(i)
    finally:
        for w in workers:
            if w.job is not None:
                w.kill()
            else:
                w.stop()

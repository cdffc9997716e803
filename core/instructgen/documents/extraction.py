"""Reading files to text: extractor choice (extension, then content sniffing), worker processes
with a real per-file timeout and memory limit, and a content-hash cache so unchanged files are
never re-read.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import multiprocessing as mp
import os
import re
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from instructgen.documents.discovery import Found, printable_name
from instructgen.errors import OutputFolderError
from instructgen.limits import DEFAULT_FILE_TIMEOUT, DEFAULT_MAX_MEMORY_MB
from instructgen.outdir import lock_database

log = logging.getLogger("instructgen.documents")

__all__ = [
    "ExtractCache",
    "ExtractOptions",
    "ExtractResult",
    "ExtractionRun",
    "crash_reason",
    "extract_many",
    "extract_one",
    "group_memories",
    "group_memory",
    "skipped",
    "timeout_reason",
]

CACHE_VERSION = "3"  # 2: OCR small print, docx text boxes, slide order; 3: attachments
_LOOK_EVERY = 0.5  # seconds between two looks at the workers' memory and progress


@dataclass(frozen=True)
class ExtractOptions:
    """``workers`` processes (0: in the calling process, no limits); each file gets ``timeout``
    seconds (counted from the extractor's last ``report_progress()`` when it calls it) and
    ``max_memory_mb`` megabytes (the worker's own memory plus that of the programs
    it starts, such as tesseract; 0: no limit; enforced where ``/proc`` exists, i.e. Linux);
    a worker is replaced after ``recycle_after`` files."""

    workers: int = 2
    timeout: float = DEFAULT_FILE_TIMEOUT
    max_memory_mb: int = DEFAULT_MAX_MEMORY_MB
    recycle_after: int = 50
    chunk_size: int | None = None  # also chunk the text in the worker, under the same limits


@dataclass
class ExtractResult:
    rel: str
    path: str
    size: int = 0
    sha256: str | None = None
    extractor: str | None = None
    text: str | None = None
    skip: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    cached: bool = False
    resolved: str | None = None  # the file read, symbolic links resolved
    chunks: list[str] | None = None  # chunked in the worker, when asked (not cached)

    @property
    def chars(self) -> int:
        return len(self.text or "")

    def to_dict(self, with_text: bool = False) -> dict[str, Any]:
        d = asdict(self)
        d.pop("chunks")
        if not with_text:
            d.pop("text")
        d["path"] = printable_name(self.path)
        if self.resolved is not None:
            d["resolved"] = printable_name(self.resolved)
        d["chars"] = self.chars
        return d


def _candidates(path: Path, head: bytes) -> list[Any]:
    """Extractor entries to try, best first. Extension matches whose content agrees come first,
    then the other extension matches, then extractors recognising the content; with a wrong
    or missing extension, the content's extractors come first."""
    from instructgen import plugins

    reg = plugins.extractors()
    by_ext = reg.for_extension(path.suffix)
    instances = {e.name: e.obj() for e in reg}
    verdict = {e.name: instances[e.name].sniff(head) for e in reg}
    sniffed = [
        e
        for e in sorted(reg, key=lambda e: (-e.meta["priority"], e.name))
        if verdict[e.name] is True
    ]
    agreeing = [e for e in by_ext if verdict[e.name] is not False]
    if agreeing:  # the extension looks right: its extractors first, then others that
        # recognise the content (a Word 97 file named .docx is read by the .doc reader)
        ordered = agreeing + [e for e in by_ext if e not in agreeing]
        ordered += [e for e in sniffed if e not in ordered]
    else:  # wrong or unknown extension: trust the content first
        ordered = sniffed + [e for e in by_ext if e not in sniffed]
    return [(e.name, instances[e.name]) for e in ordered]


def _readers_of(suffix: str) -> set[str]:
    """Names of the extractors registered for this file extension."""
    from instructgen import plugins

    return {e.name for e in plugins.extractors().for_extension(suffix)}


# Characters that do not occur in text: most C0 controls, DEL, and U+FFFD (what a decoder
# puts for bytes it could not read).
_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f\ufffd]")
_SAMPLE = 1 << 16


def not_text(text: str) -> bool:
    """Whether ``text`` is mostly binary (NUL bytes, control characters), judged on samples
    from its start, middle and end so that even a huge one costs little."""
    if len(text) <= 3 * _SAMPLE:
        sample = text
    else:
        mid = len(text) // 2
        sample = text[:_SAMPLE] + text[mid : mid + _SAMPLE] + text[-_SAMPLE:]
    return len(_NOT_TEXT.findall(sample)) > len(sample) // 10


def extract_one(path: str, rel: str, size: int = 0, chunk_size: int | None = None) -> ExtractResult:
    """Extract one file in this process (and chunk it when ``chunk_size`` is given). Top-level
    and picklable, for any executor."""
    from instructgen.errors import ExtractionError
    from instructgen.registry import missing_requirement

    start = time.monotonic()
    p = Path(path)
    result = ExtractResult(rel=rel, path=path, size=size)
    try:
        with p.open("rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        result.skip = f"unreadable: {exc.strerror or exc}"
        return result
    candidates = _candidates(p, head)
    if not candidates:
        result.skip = f"no extractor for '{p.suffix or '(no extension)'}' files"
        return result
    reasons: list[str] = []
    needs_extra = False
    for name, extractor in candidates:
        if needs_extra and name not in _readers_of(p.suffix):
            # This format's readers need an extra: skip with that reason rather than read the
            # file as something else (HTML or RTF markup as plain text).
            break
        missing = missing_requirement(extractor)
        if missing:
            reasons.append(missing)
            needs_extra = needs_extra or name in _readers_of(p.suffix)
            continue
        why_not = extractor.unavailable_reason()
        if why_not:
            reasons.append(why_not)
            continue
        try:
            out = extractor.extract(p)
        except ExtractionError as exc:
            reasons.append(exc.reason)
            if exc.final:
                break
            continue
        except Exception as exc:  # a bug or a hostile file must not stop the run
            reasons.append(f"{name} failed: {type(exc).__name__}: {exc}"[:300])
            continue
        if not out.text.strip():
            reasons.append(f"{name}: no text")
        elif not_text(out.text):
            reasons.append("not text (binary content)")
        else:
            result.extractor, result.text, result.metadata = name, out.text, out.metadata
            break
    if result.text is None:
        result.skip = reasons[0] if reasons else "no text"
    elif chunk_size:
        from instructgen.documents.chunking import chunk_text

        result.chunks = chunk_text(result.text, chunk_size)
    result.seconds = round(time.monotonic() - start, 3)
    return result


# -- worker processes -------------------------------------------------------------------------


def _worker_main(conn: Connection, progress: Any = None, chunk_size: int | None = None) -> None:
    # Its own process group: killing the group on a timeout or over the memory limit also ends
    # the programs the extractor started (tesseract, soffice), and a Ctrl-C at the terminal
    # reaches only the caller, which stops the workers itself.
    with contextlib.suppress(OSError, AttributeError):
        os.setpgid(0, 0)
    # Objects inherited through fork are left out of garbage collection here: a collection
    # would write to every one of them and so copy the caller's whole heap into the worker
    # (measured: 1.1 GB for a caller holding 6 million small lists), which also counts
    # against the memory limit.
    gc.freeze()
    from instructgen import extractor

    extractor._progress = progress  # report_progress() counts here; the run watches it
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


def _init_worker(env: dict[str, str], blobs: list[tuple[str, bytes]]) -> None:
    import pickle

    from instructgen import plugins

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

    from instructgen import plugins

    blobs = []
    for name, plugin in plugins.in_process_plugins():
        try:
            blobs.append((name, pickle.dumps(plugin)))
        except Exception as exc:  # defined in __main__ of a notebook, holds a lock, ...
            log.warning("in-process plugin %s cannot reach extraction workers: %s", name, exc)
    return ("init", dict(os.environ), blobs)


# Skip reasons of files a worker did not finish. They are not cached (``result_to_cache``): a
# rerun, perhaps with higher limits, tries those files again.
_CRASHED = "extraction crashed the worker"
_OVER_MEMORY = "over the memory limit"
_TIMED_OUT = "timed out"


def timeout_reason(seconds: float, after: float | None = None) -> str:
    """The skip reason of a file that went over the per-file time limit: in all, or (``after``
    seconds in all) since the extractor last reported progress."""
    if after is not None:
        return f"{_TIMED_OUT}: no progress for {seconds:g} s (after {after:.0f} s in all)"
    return f"{_TIMED_OUT} after {seconds:g} s (--file-timeout allows more)"


def crash_reason(detail: str | None = None) -> str:
    """The skip reason of a file whose worker died (``detail``: what the executor saw)."""
    return f"{_CRASHED} ({detail})" if detail else _CRASHED


def skipped(f: Found, why: str) -> ExtractResult:
    """The result of a file that was not read, and why."""
    return ExtractResult(rel=f.rel, path=str(f.path), size=f.size, skip=why, resolved=f.real)


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
        """``init``: the message a worker that was not forked from the caller needs first."""
        self.conn, child = ctx.Pipe()
        self.progress = ctx.Value("Q", 0, lock=False)  # report_progress() calls, this worker
        self.proc = ctx.Process(
            target=_worker_main, args=(child, self.progress, chunk_size), daemon=True
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


def _run_pool(
    jobs: Sequence[tuple[int, str, str, int]], options: ExtractOptions
) -> Iterator[tuple[int, ExtractResult]]:
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
            ready = wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout=wait_for)
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
                        yield job[0], _skipped(job, _CRASHED)
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
                    yield job[0], _skipped(job, _CRASHED)
                    workers[i] = w = new_worker()
                elif id(w) in over or w.expired(now, options.timeout):
                    w.kill()
                    if id(w) in over:
                        why = f"{_OVER_MEMORY} ({options.max_memory_mb:,} MB)"
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


# -- the cache ------------------------------------------------------------------------------------


class ExtractCache:
    """Extracted text by content hash (plus the extractor set), in SQLite."""

    def __init__(self, path: str | Path) -> None:
        self._writer = lock_database(path)  # one writing process at a time
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # as the response cache: kill -9 safe
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS extracted (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
        except sqlite3.Error as exc:
            self._writer.release()
            raise OutputFolderError(f"cannot open the cache {path}: {exc}") from None

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM extracted WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        data = json.dumps(value, ensure_ascii=False)
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates (from a file name): store them escaped
            data = json.dumps(value)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO extracted VALUES (?, ?)", (key, data))

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._writer.release()


def _fingerprint() -> str:
    """The installed extractors: name, plugin and its distribution's version, so that
    installing, removing or upgrading an extractor plugin re-reads the files (``CACHE_VERSION``
    changes when the built-in extractors' output does)."""
    from instructgen import plugins

    versions = {i.name: i.version for i in plugins.plugin_infos()}
    names = sorted(f"{e.name}:{e.plugin}:{versions.get(e.plugin)}" for e in plugins.extractors())
    return hashlib.sha256(("|".join(names) + CACHE_VERSION).encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_key(f: Found, fingerprint: str | None = None) -> str | None:
    """The extraction-cache key of a file: its content hash and the installed extractors
    (``fingerprint``, computed when not given; None when the file cannot be read: extraction
    then reports why)."""
    try:
        return f"{_sha256(f.path)}:{fingerprint or _fingerprint()}"
    except OSError:
        return None


def result_from_cache(hit: dict[str, Any], f: Found) -> ExtractResult:
    return ExtractResult(
        **{**hit, "rel": f.rel, "path": str(f.path), "cached": True, "resolved": f.real}
    )


_NOT_CACHED = ("rel", "path", "cached", "resolved", "chunks")


def result_to_cache(res: ExtractResult) -> dict[str, Any] | None:
    """What to store for a result; None for outcomes worth retrying next run (timeouts, the
    memory limit: a rerun may allow more; a reader whose extra was not installed yet)."""
    from instructgen.registry import MISSING_REQUIREMENT

    if (res.skip or "").startswith((_TIMED_OUT, _CRASHED, _OVER_MEMORY, MISSING_REQUIREMENT)):
        return None
    # shallow: asdict() deep-copies the metadata, a third of the cost of a cached small file
    return {f.name: getattr(res, f.name) for f in fields(res) if f.name not in _NOT_CACHED}


def _work_order(found: Sequence[Found], todo: list[int]) -> list[int]:
    """Files whose extractor is ``slow`` (OCR, transcription) first, then larger before
    smaller: started last, one long file would leave the other workers idle at the end."""
    from instructgen import plugins

    reg = plugins.extractors()
    slow: dict[str, bool] = {}

    def key(i: int) -> tuple[bool, int]:
        ext = found[i].path.suffix.lower()
        if ext not in slow:
            best = reg.for_extension(ext)[:1]
            slow[ext] = bool(best) and bool(getattr(best[0].obj, "slow", False))
        return (not slow[ext], -found[i].size)

    return sorted(todo, key=key)


class ExtractionRun:
    """The bookkeeping every executor shares: results in the order of ``found``, discovery
    skips and extraction-cache hits answered without reading a file, and each new result
    stored in the cache (with its content hash) and reported through ``on_result``.
    ``todo``: the files still to read, in the order to start them (slow ones first)."""

    def __init__(
        self,
        found: Sequence[Found],
        cache: ExtractCache | None = None,
        on_result: Callable[[ExtractResult], None] | None = None,
    ) -> None:
        self.found, self.cache, self.on_result = found, cache, on_result
        self.results: list[ExtractResult | None] = [None] * len(found)
        self.keys: dict[int, str] = {}
        self.todo: list[int] = []  # indices of the files still to extract
        fingerprint = _fingerprint() if cache is not None else None
        for i, f in enumerate(found):
            if f.skip is not None:
                self._report(i, skipped(f, f.skip))
                continue
            if cache is not None and (key := cache_key(f, fingerprint)) is not None:
                self.keys[i] = key
                hit = cache.get(key)
                if hit is not None:
                    self._report(i, result_from_cache(hit, f))
                    continue
            self.todo.append(i)
        self.todo = _work_order(found, self.todo)

    def _report(self, i: int, res: ExtractResult) -> None:
        if res.resolved is None:
            res.resolved = self.found[i].real
        if res.skip:  # a reason can quote a file name: shown and stored escaped, as names are
            res.skip = printable_name(res.skip)
        self.results[i] = res
        if self.on_result:
            self.on_result(res)

    def record(self, i: int, res: ExtractResult) -> None:
        """A freshly extracted (or timed-out) file: cache it when worth it, then report it."""
        if i in self.keys:
            res.sha256 = self.keys[i].split(":", 1)[0]
            stored = result_to_cache(res)
            if self.cache is not None and stored is not None:
                self.cache.put(self.keys[i], stored)
        self._report(i, res)

    def ordered(self) -> list[ExtractResult]:
        return [r for r in self.results if r is not None]


def extract_many(
    found: Sequence[Found],
    *,
    options: ExtractOptions | None = None,
    cache: ExtractCache | None = None,
    on_result: Callable[[ExtractResult], None] | None = None,
) -> list[ExtractResult]:
    """Extract every found file (in parallel), results in the order of ``found``."""
    options = options or ExtractOptions()
    run = ExtractionRun(found, cache, on_result)
    jobs = [(i, str(found[i].path), found[i].rel, found[i].size) for i in run.todo]
    if options.workers <= 0:
        stream: Iterator[tuple[int, ExtractResult]] = (
            (j[0], extract_one(j[1], j[2], j[3], options.chunk_size)) for j in jobs
        )
    else:
        stream = _run_pool(jobs, options)
    for idx, res in stream:
        run.record(idx, res)
    return run.ordered()

"""Directory runs as a stream: discovery → extraction workers → chunks → question/answer
requests → rows on disk, with bounded hand-overs between the stages, so memory does not grow
with the corpus and the first request goes out as soon as the first file is read.

- ``DirRunOptions`` is a directory run's settings as one value, from the command line and the
  Python API (``generate_dataset_from_dir``) through ``runs.run_from_dir`` to ``stream_dir``,
  the pipeline's entry (discovery, then the stages below). Its fields are the one place the
  run's parameters are written: the front doors' signatures are built from them.
- ``read_files`` reads files on this machine (the worker pool, or this process): the extraction
  stage the ``local`` executor supplies; other executors supply their own ``read``.
- ``stream_extract`` yields each file's result as soon as it is known (discovery skips and
  extraction-cache hits first, then the worker pool's results as they arrive), never a list.
- ``Tally`` keeps what run.json reports about the files (without their text).
- ``RowSpill`` appends rows to a file on disk in the order they are answered and reads them
  back ordered by file (discovery order) then chunk, so the dataset does not depend on timing.
- ``stream_pairs`` runs the whole flow through one dispatcher: extraction in a thread feeding a
  bounded queue, a bounded number of chunk requests in flight, each chunk's rows spilled when
  its answer comes, a file's chunks dropped once their requests are issued.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import inspect
import json
import logging
import threading
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from instructgen.diskspace import disk_full, is_disk_full
from instructgen.dispatch import Dispatcher
from instructgen.documents.chunking import chunk_text
from instructgen.documents.discovery import Found, discover_files
from instructgen.documents.extract_cache import ExtractCache, ExtractionRun
from instructgen.documents.qa import ChunkPairs, RepliesReport, qa_for_chunk
from instructgen.documents.routing import extract_one
from instructgen.documents.types import Chunk, ExtractOptions, ExtractResult
from instructgen.documents.workers import run_pool
from instructgen.errors import AuthenticationError, ConfigError, EngineError
from instructgen.executor import ReadJob
from instructgen.progress import ProgressCallback, ProgressEvent, emit

if TYPE_CHECKING:
    from instructgen.batching import BatchConfig
    from instructgen.dispatch import DispatchConfig
    from instructgen.engine_contract import Engine
    from instructgen.executor import Executor
    from instructgen.filter import Filter
    from instructgen.selfinstruct.options import SelfInstructOptions

log = logging.getLogger("instructgen.documents")

__all__ = [
    "LIMIT_KEYWORDS",
    "DirRunOptions",
    "Read",
    "RowSpill",
    "Tally",
    "read_files",
    "stream_chunks",
    "stream_dir",
    "stream_extract",
    "stream_pairs",
]


LIMIT_KEYWORDS = ("workers", "timeout", "max_bytes", "max_memory_mb", "follow_symlinks")
"""Fields of ``ExtractOptions`` the front doors also take on their own (``workers=4``), each
overriding that field of ``limits``."""

SELF_INSTRUCT_ONLY = ("self_instruct", "filters", "filter_options", "response_engine")
"""Settings that only a run with ``use_self_instruct=True`` uses."""


@dataclass(frozen=True)
class DirRunOptions:
    """How a folder of documents becomes a dataset: question/answer pairs per chunk, and
    optionally Self-Instruct on top of them.

    ``cache``: a folder for the run's caches (``cache.sqlite3`` for the answers,
    ``extract-cache.sqlite3`` for the texts read); ``True``: ``out`` (or the user cache folder
    without ``out``); ``False``: no cache. ``limits``: the per-file limits (``ExtractOptions``);
    the keywords ``workers``, ``timeout``, ``max_bytes``, ``max_memory_mb`` and
    ``follow_symlinks`` given to a front door override those fields. ``config``: the
    dispatcher's limits (``DispatchConfig``: concurrency, rpm, tpm, timeout, max_cost, ...).
    ``executor``: where extraction runs (``"local"``, or an executor plugin such as ``"ray"``
    with ``executor_options``). ``batch``: ``True`` (or a ``BatchConfig``) sends the
    question/answer requests (and Self-Instruct's classification and instance requests)
    through the engine's batch API. ``out`` must be new, empty or instructgen's own; inside
    the folder read, it is not read.

    With ``use_self_instruct=True``, ``self_instruct`` (``SelfInstructOptions``: window,
    num_prompt_instructions, ...), ``filters``, ``filter_options``, ``response_engine`` (for
    Self-Instruct's instance requests) and ``response_config`` (its own limits) tune
    Self-Instruct as in ``generate_dataset``; given without it they raise ``ConfigError``.
    """

    use_self_instruct: bool = False
    chunk_size: int = 8000
    num_samples_per_chunk: int = 5
    num_instructions: int = 10
    num_instructions_for_finetuning: int = 5
    out: str | Path | None = None
    cache: bool | str | Path = True
    config: DispatchConfig | None = None
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    limits: ExtractOptions = field(default_factory=ExtractOptions)
    seed: int = 42
    executor: str | Executor | None = None
    executor_options: Mapping[str, Any] | None = None
    self_instruct: SelfInstructOptions | None = None
    filters: Sequence[str | Filter] | None = None
    filter_options: Mapping[str, Mapping[str, Any]] | None = None
    batch: bool | BatchConfig = False
    response_engine: str | Engine | None = None
    response_config: DispatchConfig | None = None

    def __post_init__(self) -> None:
        if self.num_samples_per_chunk < 1:
            raise ConfigError("num_samples_per_chunk must be at least 1")
        if self.chunk_size < 1:
            raise ConfigError("chunk_size must be at least 1")
        if self.limits is None:  # the old default of the keyword
            object.__setattr__(self, "limits", ExtractOptions())
        if not self.use_self_instruct:
            unused = [n for n in SELF_INSTRUCT_ONLY if getattr(self, n) is not None]
            if unused:
                raise ConfigError(
                    f"{', '.join(unused)}: used only with use_self_instruct=True; pass "
                    f"use_self_instruct=True or leave {'it' if len(unused) == 1 else 'them'} out"
                )

    @classmethod
    def from_keywords(
        cls, options: DirRunOptions | None = None, /, **keywords: Any
    ) -> DirRunOptions:
        """The options a front door was given: ``options`` (default: the defaults) with the
        fields named in ``keywords`` replaced, and the loose limits (``LIMIT_KEYWORDS``, when
        not ``None``) written into ``limits``. An unknown keyword is a ``TypeError``, as for
        any function."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(keywords) - names - set(LIMIT_KEYWORDS))
        if unknown:
            raise TypeError(
                f"unexpected keyword argument(s) {', '.join(unknown)}; a directory run takes "
                f"{', '.join([*sorted(names), *LIMIT_KEYWORDS])}"
            )
        own = {k: v for k, v in keywords.items() if k in names}
        loose = {k: keywords[k] for k in LIMIT_KEYWORDS if keywords.get(k) is not None}
        base = options if options is not None else cls()
        limits = own.get("limits", base.limits) or ExtractOptions()
        if loose:
            own["limits"] = replace(limits, **loose)
        return replace(base, **own) if own else base

    @classmethod
    def parameters(cls) -> list[inspect.Parameter]:
        """The fields, and the loose limits, as keyword-only parameters: what a front door's
        ``inspect.signature`` shows."""
        out = []
        for f in fields(cls):
            default = f.default if f.default is not MISSING else None
            if f.name == "limits":
                default = None
            out.append(
                inspect.Parameter(
                    f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=f.type
                )
            )
        for name, kind in (
            ("workers", "int | None"),
            ("timeout", "float | None"),
            ("max_bytes", "int | None"),
            ("max_memory_mb", "int | None"),
            ("follow_symlinks", "bool | None"),
        ):
            out.append(
                inspect.Parameter(
                    name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=kind
                )
            )
        return out


def read_files(
    jobs: Sequence[ReadJob], options: ExtractOptions, stop: threading.Event | None = None
) -> Iterator[tuple[int, ExtractResult]]:
    """``(job.position, result)`` for every job as it is read: in ``options.workers`` worker
    processes under the per-file limits (started in the order given), or one after another in
    this process when ``options.workers`` is 0. ``stop`` ends reading at once (the workers
    still reading are killed); so does closing the generator."""
    if options.workers > 0:
        yield from run_pool(jobs, options, stop)
        return
    for job in jobs:
        if stop is not None and stop.is_set():
            return
        yield job.position, extract_one(job.path, job.rel, job.size, options.chunk_size)


Read = Callable[
    [Sequence[ReadJob], ExtractOptions, threading.Event], Iterator[tuple[int, ExtractResult]]
]
"""What an executor supplies (``Executor.read``): reads jobs, yields ``(index, result)``."""


def stream_extract(
    found: Sequence[Found],
    options: ExtractOptions,
    cache_path: str | Path | None,
    stop: threading.Event | None = None,
    read: Read | None = None,
) -> Iterator[tuple[int, ExtractResult]]:
    """``(index in found, result)`` for every file, as each becomes known: discovery skips and
    extraction-cache hits first (``ExtractionRun.known``), then the files ``read`` reads (an
    executor's ``read``; None: ``read_files`` on this machine) in the order they finish. New
    results are stored in the cache (``cache_path``; None: no cache). Once ``stop`` is set,
    reading stops (files being read are abandoned) and nothing more is yielded."""
    stop = stop if stop is not None else threading.Event()
    cache = ExtractCache(cache_path) if cache_path else None
    try:
        run = ExtractionRun(found, cache)
        yield from run.known()
        if stop.is_set():
            return
        results = (read or read_files)(run.jobs(), options, stop)
        try:
            for i, res in results:
                if stop.is_set():
                    break
                yield i, run.record(i, res)
        finally:
            close = getattr(results, "close", None)
            if close is not None:
                close()  # stops the readers when the consumer stops early
    finally:
        if cache is not None:
            cache.close()


def stream_chunks(
    found: Sequence[Found],
    options: ExtractOptions,
    cache_path: str | Path | None,
    *,
    chunk_size: int,
    tally: Tally,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    read: Read | None = None,
) -> Iterator[tuple[int, list[Chunk]]]:
    """``(file index, its chunks)`` for every file read, as files are read; every file (read
    or skipped) is recorded in ``tally`` without its text."""
    done = 0
    # The workers chunk what they read, under the per-file limits; cached texts are chunked
    # here (linear in the text either way).
    options = replace(options, chunk_size=chunk_size)
    for i, res in stream_extract(found, options, cache_path, stop, read):
        done += 1
        emit(progress, ProgressEvent(stage="extract", done=done, total=len(found), message=res.rel))
        text, parts = res.text, res.chunks
        res.chunks = None
        tally.add(i, res)
        res.text = None
        if not text:
            continue
        if parts is None:
            parts = chunk_text(text, chunk_size)
        del text
        chunks = [Chunk(res.rel, k, len(parts), part) for k, part in enumerate(parts)]
        tally.chunks += len(chunks)
        yield i, chunks


class Tally:
    """What run.json reports about a run's files, kept without their text: ``files`` and
    ``skipped`` in discovery order, and run.json's ``extraction`` counts (``summary``)."""

    def __init__(self) -> None:
        self._files: dict[int, dict[str, Any]] = {}
        self.chunks = 0

    def add(self, index: int, res: ExtractResult) -> None:
        self._files[index] = res.to_dict()

    def get(self, index: int) -> dict[str, Any] | None:
        """What is recorded of the file at ``index`` (discovery order), once it is known."""
        return self._files.get(index)

    @property
    def files(self) -> list[dict[str, Any]]:
        return [self._files[i] for i in sorted(self._files)]

    @property
    def skipped(self) -> list[dict[str, Any]]:
        return [{"file": f["rel"], "reason": f["skip"]} for f in self.files if f["skip"]]

    def summary(self) -> dict[str, Any]:
        files = self.files
        read = [f for f in files if f["chars"]]
        return {
            "files": len(files),
            "read": len(read),
            "skipped": sum(1 for f in files if f["skip"]),
            "from_cache": sum(bool(f["cached"]) for f in files),
            "characters": sum(f["chars"] for f in read),
            "chunks": self.chunks,
        }


class RowSpill:
    """Rows appended to ``path`` (JSON lines) in the order they come, under a key per chunk
    (file index, chunk index); iterating gives them back ordered by key. Only three integers
    a chunk stay in memory (its key, offset and size)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fh = self.path.open("w+b", buffering=0)  # each chunk's rows written at once
        self._keys = array("q")  # file index << 32 | chunk index
        self._offsets = array("q")
        self._sizes = array("q")
        self.rows = 0

    def add(self, key: tuple[int, int], rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        data = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows)
        offset = self._fh.seek(0, 2)
        try:
            view = memoryview(data)
            while view:
                written = self._fh.write(view)
                if not written:
                    raise OSError(errno.ENOSPC, "no space left on device")
                view = view[written:]
        except OSError as exc:
            if is_disk_full(exc):
                # the chunk's answers are in the response cache: a rerun makes its rows again
                with contextlib.suppress(OSError):
                    self._fh.truncate(offset)
                raise disk_full("the dataset's rows", self.path, exc) from None
            raise
        self._keys.append(key[0] << 32 | key[1])
        self._offsets.append(offset)
        self._sizes.append(len(data))
        self.rows += len(rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        order = sorted(range(len(self._keys)), key=self._keys.__getitem__)
        with self.path.open("rb") as fh:
            for i in order:
                fh.seek(self._offsets[i])
                for line in fh.read(self._sizes[i]).splitlines():
                    yield json.loads(line)

    def __len__(self) -> int:
        return self.rows

    def close(self) -> None:
        self._fh.close()


_DONE = object()


async def stream_dir(
    path: str | Path,
    options: DirRunOptions,
    dispatcher: Dispatcher,
    read: Read,
    spill: RowSpill,
    to_rows: Callable[[Chunk, list[tuple[str, str]]], list[dict[str, Any]]],
    *,
    tally: Tally,
    extract_cache: Path | None,
    skip_dirs: Sequence[Path] = (),
    progress: ProgressCallback | None = None,
) -> tuple[list[dict[str, Any]], RepliesReport]:
    """The directory pipeline, with the settings of ``options``: discovery, then each file
    read by ``read`` (an executor's; the extraction cache ``extract_cache`` answers files read
    before) and chunked, each chunk's question/answer requests sent through ``dispatcher``
    (at most ``2 × concurrency + 16`` open), its rows added to ``spill``. Every file goes to
    ``tally``; returns the failed chunks and how the replies went."""
    found = await asyncio.to_thread(
        discover_files,
        path,
        options.limits,
        include=options.include,
        exclude=options.exclude,
        skip_dirs=skip_dirs,
    )
    loop = asyncio.get_running_loop()
    stop = threading.Event()  # set when the run ends early: extraction stops at once

    # extraction events come from the extraction thread: shown from the event loop's thread,
    # like the dispatcher's, so a progress callback is never called from two threads at once
    on_loop: ProgressCallback | None = None
    if progress is not None:
        on_loop = cast(
            "ProgressCallback",
            functools.partial(loop.call_soon_threadsafe, functools.partial(emit, progress)),
        )
    chunks = stream_chunks(
        found,
        options.limits,
        extract_cache,
        chunk_size=options.chunk_size,
        tally=tally,
        progress=on_loop,
        stop=stop,
        read=read,
    )
    in_flight = 2 * dispatcher.config.concurrency + 16
    return await stream_pairs(
        chunks,
        dispatcher,
        options.num_samples_per_chunk,
        to_rows,
        spill,
        in_flight=in_flight,
        stop=stop,
    )


async def stream_pairs(
    chunks: Iterator[tuple[int, list[Chunk]]],
    dispatcher: Dispatcher,
    n: int,
    to_rows: Callable[[Chunk, list[tuple[str, str]]], list[dict[str, Any]]],
    spill: RowSpill,
    *,
    in_flight: int = 128,
    queued_files: int = 2,
    stop: threading.Event | None = None,
) -> tuple[list[dict[str, Any]], RepliesReport]:
    """Question/answer pairs for every chunk ``chunks`` yields (consumed in a thread, at most
    ``queued_files`` files ahead), at most ``in_flight`` chunk requests at a time through
    ``dispatcher``; each chunk's rows (``to_rows``) go to ``spill`` as its answer comes.
    Each chunk's pairs come from ``qa_for_chunk`` (with its follow-up requests). Returns the
    failed chunks (engine errors other than a wrong key, which stops the run; so do other
    exceptions and cancellation) and how the replies went (run.json's
    ``question_answer_replies``). ``stop`` is set when the
    run ends early; give the same event to ``stream_chunks`` so that extraction stops at once
    rather than after the file being read."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queued_files)
    stop = stop if stop is not None else threading.Event()

    def produce() -> None:
        try:
            for item in chunks:
                while not stop.is_set():
                    fut = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
                    try:
                        fut.result(timeout=0.5)
                        break
                    except TimeoutError:
                        fut.cancel()
                if stop.is_set():
                    break
            final: Any = _DONE
        except BaseException as exc:  # handed to the consumer, which raises it
            final = exc
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        if not stop.is_set():
            asyncio.run_coroutine_threadsafe(queue.put(final), loop).result()

    slots = asyncio.Semaphore(in_flight)
    tasks: set[asyncio.Task[None]] = set()
    failed: list[dict[str, Any]] = []
    fatal: list[BaseException] = []
    replies = RepliesReport()

    async def one(file_index: int, chunk: Chunk) -> None:
        got: ChunkPairs | None = None
        try:
            got = await qa_for_chunk(chunk, dispatcher, n)
        except AuthenticationError as exc:
            fatal.append(exc)
            return
        except EngineError as exc:
            failed.append({"file": chunk.rel, "chunk": chunk.index, "error": str(exc)})
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # BudgetExceededError, bugs: stop the run
            fatal.append(exc)
            return
        finally:
            slots.release()
        if got is not None:
            replies.merge(
                RepliesReport.of_chunk(got, chunk.rel, chunk.index, (file_index, chunk.index))
            )
        try:
            spill.add((file_index, chunk.index), to_rows(chunk, got.pairs if got else []))
        except BaseException as exc:  # the disk is full, ...: stop the run rather than lose rows
            fatal.append(exc)

    thread = threading.Thread(target=produce, name="instructgen-extract", daemon=True)
    thread.start()
    ok = False
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            file_index, file_chunks = item
            dispatcher.expect(len(file_chunks))
            file_chunks.reverse()
            while file_chunks:
                chunk = file_chunks.pop()  # the file's list lets go of each chunk it issues
                await slots.acquire()
                if fatal:
                    raise fatal[0]
                task = asyncio.create_task(one(file_index, chunk))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            del item, file_chunks
            if fatal:
                raise fatal[0]
        while tasks:
            await asyncio.wait(set(tasks))
            if fatal:
                raise fatal[0]
        if fatal:
            raise fatal[0]
        ok = True
    except BaseException:
        stop.set()
        for t in list(tasks):
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(asyncio.QueueEmpty):
            while True:
                queue.get_nowait()  # unblock the producer
        raise
    finally:
        # after an error the producer may be waiting for a file a worker still reads: with the
        # stop event shared with stream_chunks it stops within a fraction of a second (and
        # kills that worker); otherwise at its next hand-over, which the run waits 5 s for
        await asyncio.to_thread(thread.join, None if ok else 5.0)
    failed.sort(key=lambda f: (f["file"], f["chunk"]))
    return failed, replies

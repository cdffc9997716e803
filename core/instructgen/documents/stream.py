"""Directory runs as a stream: discovery → extraction workers → chunks → question/answer
requests → rows on disk, with bounded hand-overs between the stages, so memory does not grow
with the corpus and the first request goes out as soon as the first file is read.

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
import json
import logging
import threading
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from instructgen.diskspace import disk_full, is_disk_full
from instructgen.dispatch import Dispatcher
from instructgen.documents.chunking import chunk_text
from instructgen.documents.discovery import Found
from instructgen.documents.extract_cache import ExtractCache, ExtractionRun
from instructgen.documents.extraction import read_files
from instructgen.documents.qa import ChunkPairs, qa_for_chunk
from instructgen.documents.types import Chunk, ExtractOptions, ExtractResult
from instructgen.errors import AuthenticationError, EngineError
from instructgen.executor import ReadJob
from instructgen.progress import ProgressCallback, ProgressEvent, emit

log = logging.getLogger("instructgen.documents")

__all__ = ["Read", "RowSpill", "Tally", "stream_chunks", "stream_extract", "stream_pairs"]


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
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
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
    replies: dict[str, Any] = {"replies": 0, "unparsed_replies": 0, "follow_up_requests": 0}
    short: list[tuple[tuple[int, int], dict[str, Any]]] = []  # chunks that fell short

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
            replies["replies"] += got.replies
            replies["unparsed_replies"] += got.unparsed
            replies["follow_up_requests"] += got.follow_ups
            if got.short:
                short.append(((file_index, chunk.index), got.shortfall(chunk.rel, chunk.index)))
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
    short.sort(key=lambda item: item[0])  # in chunk order, whatever order they were answered
    replies["short_chunks"] = [entry for _, entry in short]
    return failed, replies

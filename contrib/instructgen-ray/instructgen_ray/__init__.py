"""The ``ray`` executor: a directory run's files read on the nodes of a Ray cluster.

A directory run stays the one streamed pipeline on the machine that started it (discovery,
the extraction cache, chunking, requests through one dispatcher, rows spilled to disk); this
executor supplies its extraction stage. Each file is a Ray task running
``instructgen.extract_one`` on some node, with at most as many tasks in flight as the cluster
has CPUs (bounded ``ray.wait`` windows), each result handed to the pipeline as it returns. The
driver therefore holds the texts of the files in flight and the pipeline's bounded queues,
never the corpus, and requests start as soon as the first file is read.

Generation is not distributed: requests are network-bound, and sending them from one
dispatcher keeps the run's concurrency, RPM/TPM limits, per-key 429 handling and response cache
exactly those of a local run, so the dataset equals the local executor's byte for byte. The
workers never see the API key (they only read files).

Files are read by path: every node must see the folder at the same path (shared storage). A
task whose node dies is retried by Ray on another node (``max_retries``); a file that goes over
the per-file time limit is cancelled and reported as skipped.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from instructgen import (
    ConfigError,
    Executor,
    ExecutorRegistry,
    ExtractOptions,
    ExtractResult,
    ReadJob,
    crash_reason,
    extract_one,
    hookimpl,
    timeout_reason,
)

__all__ = ["RayExecutor", "check_address"]

PROBE_TIMEOUT = 5.0  # seconds to resolve and connect to a cluster address before giving up
CLOSE_WAIT = 10.0  # seconds to wait for a local Ray instance to shut down
NODE_RETRIES = 2  # a file whose node (or worker process) died is tried again this many times


def _split_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``ray://HOST:PORT`` → (host, port); ConfigError when it is neither."""
    parts = urlsplit(address if "://" in address else f"gcs://{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise ConfigError(
            f"--ray-address {address!r}: expected HOST:PORT (the head's GCS, port 6379 by "
            "default), ray://HOST:PORT (Ray Client, 10001) or auto"
        )
    return parts.hostname, port


def _connect(host: str, port: int, timeout: float) -> str | None:
    """None when ``host:port`` accepts a TCP connection within ``timeout`` seconds, else why
    not. Name resolution runs in a thread of its own, so a resolver that never answers does
    not hold the caller past ``timeout`` either."""
    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(None)
        except socket.gaierror:
            outcome.append("no such host")
        except ConnectionRefusedError:
            outcome.append("connection refused")
        except TimeoutError:
            outcome.append(f"no answer within {timeout:g} s")
        except OSError as exc:
            outcome.append(exc.strerror or type(exc).__name__)

    thread = threading.Thread(target=attempt, name="instructgen-ray-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"no answer within {timeout:g} s"


def check_address(address: str, timeout: float = PROBE_TIMEOUT) -> str:
    """The cluster address to join, checked: ``auto`` is resolved the way Ray resolves it
    (``RAY_ADDRESS``, then the cluster started on this machine); ConfigError (exit 2) naming
    the address when nothing answers there within ``timeout`` seconds, instead of Ray's own
    reconnection attempts, which can take many minutes."""
    if address == "auto":
        import ray._private.services as services

        try:
            resolved = services.canonicalize_bootstrap_address("auto")
        except ConnectionError as exc:
            raise ConfigError(
                "--ray-address auto: no Ray cluster is running on this machine and RAY_ADDRESS "
                "is not set; start one with `ray start --head`, give its address, or leave "
                "--ray-address out to start a local Ray instance"
            ) from exc
        if not resolved:
            raise ConfigError("--ray-address auto: no Ray cluster found")
        check_address(resolved, timeout)
        return address
    host, port = _split_address(address)
    why = _connect(host, port, timeout)
    if why is not None:
        raise ConfigError(
            f"--ray-address {address}: cannot reach a Ray cluster there ({why}); check the "
            "head node's address (`ray status` on it prints it), or leave --ray-address out "
            "to start a local Ray instance"
        )
    return address


def _read(job: ReadJob, chunk_size: int | None) -> tuple[int, ExtractResult]:
    """What one Ray task runs: one file, on whichever node Ray chose."""
    return job.position, extract_one(job.path, job.rel, job.size, chunk_size)


class RayExecutor(Executor):
    """Options: ``address`` (``HOST:6379``, ``ray://HOST:10001`` or ``auto``; none starts a
    local Ray instance), ``workers`` (CPUs of that local instance, default 2)."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, **options: Any):
        super().__init__(**options)
        self.address = check_address(address) if address else None
        self.workers = workers or 2
        self._started = False
        self._lock = threading.Lock()
        self._owner: threading.Thread | None = None
        self._ready = threading.Event()
        self._closing = threading.Event()
        self._reaper: subprocess.Popen[bytes] | None = None
        self._start()  # Ray boots (seconds) while the run discovers its files
        self._failure: BaseException | None = None

    # -- the cluster ---------------------------------------------------------------------------

    def _own_ray(self) -> None:
        """The thread that starts (or joins) Ray and, for a local instance, stops it at
        ``close``. It stays alive in between: Ray's own processes are set to die with the
        thread that started them, so the thread must live as long as the instance."""
        try:
            import ray

            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": False,
            }
            if not ray.is_initialized():
                if self.address:
                    ray.init(address=self.address, **kwargs)
                else:  # "local": a new instance, never a cluster `ray start` left running here
                    ray.init(address="local", num_cpus=self.workers, **kwargs)
                    self._reaper = _start_reaper()
                self._started = True
        except BaseException as exc:  # handed to the reading thread, which raises it
            self._failure = exc
            return
        finally:
            self._ready.set()
        self._closing.wait()
        if self._started:
            ray.shutdown()
            self._started = False
        if self._reaper is not None:
            _stop_reaper(self._reaper)
            self._reaper = None

    def _start(self) -> None:
        with self._lock:
            if self._owner is None:
                self._owner = threading.Thread(
                    target=self._own_ray, name="instructgen-ray", daemon=True
                )
                self._owner.start()

    def _ray(self, stop: threading.Event) -> Any | None:
        """Ray, initialised (in a thread of its own, so that a stop is heard while a cluster
        starts or is joined); None when ``stop`` was set first."""
        self._start()
        while not self._ready.wait(0.1):
            if stop.is_set():
                return None
        if self._failure is not None:
            where = f" at {self.address}" if self.address else ""
            raise ConfigError(
                f"Ray: cannot start or join the cluster{where}: "
                f"{type(self._failure).__name__}: {self._failure}"
            ) from self._failure
        import ray

        return ray

    # -- the executor contract -----------------------------------------------------------------

    def read(
        self, jobs: Sequence[ReadJob], options: ExtractOptions, stop: threading.Event
    ) -> Iterator[tuple[int, ExtractResult]]:
        if not jobs:
            return
        ray = self._ray(stop)
        if ray is None:
            return
        remote = ray.remote(num_cpus=1, max_retries=NODE_RETRIES, retry_exceptions=False)(_read)
        # as many files in flight as the cluster has CPUs: each task starts when it is sent,
        # so the per-file time limit counts from there
        slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
        pending: dict[Any, tuple[ReadJob, float]] = {}
        queue = iter(jobs)
        try:
            while True:
                while len(pending) < slots and (job := next(queue, None)) is not None:
                    pending[remote.remote(job, options.chunk_size)] = (job, time.monotonic())
                if not pending or stop.is_set():
                    return
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.2)
                for ref in ready:
                    job, _sent = pending.pop(ref)
                    try:
                        position, result = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # its worker or node died for good
                        yield (
                            job.position,
                            _skipped(job, crash_reason(f"Ray: {type(exc).__name__}")),
                        )
                    else:
                        yield position, result
                now = time.monotonic()
                for ref, (job, sent) in list(pending.items()):
                    if now - sent > options.timeout:
                        del pending[ref]
                        with contextlib.suppress(Exception):
                            ray.cancel(ref, force=True)
                        yield job.position, _skipped(job, timeout_reason(options.timeout))
        finally:
            for ref in pending:  # stopped or closed early: nothing keeps reading
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)

    def close(self) -> None:
        """Stop a Ray instance this executor started (within ``CLOSE_WAIT`` seconds: a run
        that is being stopped does not wait longer; Ray's processes end with their owner)."""
        self._closing.set()
        if self._owner is not None:
            self._owner.join(CLOSE_WAIT)


def _start_reaper() -> subprocess.Popen[bytes] | None:
    """A process that ends what the local Ray instance leaves running if this run is killed
    (see ``reaper.py``); None where there is no Linux ``/proc`` to find those processes."""
    if not os.path.exists("/proc/self/stat"):
        return None
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("reaper.py")), str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop_reaper(reaper: subprocess.Popen[bytes]) -> None:
    """Ray was shut down here: the reaper leaves everything alone and exits."""
    with contextlib.suppress(OSError, ValueError):
        assert reaper.stdin is not None
        reaper.stdin.write(b"stop")
        reaper.stdin.close()
    try:
        reaper.wait(5)
    except subprocess.TimeoutExpired:
        reaper.kill()
        reaper.wait()


def _skipped(job: ReadJob, why: str) -> ExtractResult:
    return ExtractResult(rel=job.rel, path=job.path, size=job.size, skip=why)


@hookimpl
def register_executors(registry: ExecutorRegistry) -> None:
    registry.add(RayExecutor)

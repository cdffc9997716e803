"""A full disk: told apart from other write failures, reported once, and survived without
losing an answer that was paid for.

Every writer of a run (the response and extraction caches, the rows a directory run spills,
run.json and the dataset) turns a write that failed for lack of space into ``DiskFullError``
through ``disk_full``. Raising it halts every live dispatcher of the process: no new request is
sent, and the requests in flight are waited for and stored. There is room to store them because
the response cache holds a ``Reserve`` — space taken on its disk when it opens (a run that
cannot take it stops before sending anything) and given back the moment the disk is found full.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import threading
import weakref
from pathlib import Path
from typing import Any, Protocol

from instructgen.errors import DiskFullError

__all__ = [
    "RESERVE_BYTES",
    "Reserve",
    "disk_full",
    "free_space",
    "is_disk_full",
    "on_disk_full",
]

log = logging.getLogger("instructgen.diskspace")

RESERVE_BYTES = 1 << 20
"""Space the response cache keeps in hand for the answers in flight when the disk fills up:
at 16 requests in flight, room for answers of about 60 KB each (SQLite writes each answer's
pages, about 3 of 4 KB for a typical one, to its write-ahead log)."""

_FULL_ERRNOS = frozenset(
    code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EFBIG) if code
)
_SQLITE_FULL = 13  # SQLITE_FULL: "database or disk is full"
_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EFBIG: "file too large for this disk or process limit",
}
if hasattr(errno, "EDQUOT"):
    _REASONS[errno.EDQUOT] = "disk quota exceeded"


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is a write that failed for lack of space: ``ENOSPC``, ``EDQUOT`` or
    ``EFBIG`` (also inside Arrow's errors, which keep only the message), or SQLite's
    ``SQLITE_FULL``."""
    if isinstance(exc, DiskFullError):
        return True
    if getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL:
        return True
    if isinstance(exc, OSError):
        if exc.errno in _FULL_ERRNOS:
            return True
        text = str(exc).lower()
        return "no space left on device" in text or "disk quota exceeded" in text
    return False


def _existing(path: str | Path) -> Path | None:
    p = Path(path)
    return next((c for c in (p, *p.parents) if c.exists()), None)


def free_space(path: str | Path) -> int | None:
    """Bytes free to this user on the disk holding ``path`` (or its nearest existing parent)."""
    where = _existing(path)
    if where is not None:
        with contextlib.suppress(OSError):
            return shutil.disk_usage(where).free
    return None


def device(path: str | Path | None) -> int | None:
    """The file system holding ``path`` (its nearest existing parent); ``None``: unknown."""
    where = None if path is None else _existing(path)
    if where is not None:
        with contextlib.suppress(OSError):
            return os.stat(where).st_dev
    return None


def _same_disk(a: int | None, b: int | None) -> bool:
    return a is None or b is None or a == b


class _Halts(Protocol):
    def halt(self, error: DiskFullError) -> object: ...


_listeners: weakref.WeakKeyDictionary[Any, int | None] = weakref.WeakKeyDictionary()
_reserves: weakref.WeakSet[Reserve] = weakref.WeakSet()
_guard = threading.Lock()


def on_disk_full(listener: _Halts, path: str | Path | None = None) -> None:
    """Have ``listener.halt(error)`` called when a write finds the disk of ``path`` full (any
    disk when ``path`` is ``None``): a dispatcher stops sending. Held weakly: a listener that
    is gone is forgotten."""
    with _guard:
        _listeners[listener] = device(path)


def disk_full(what: str, path: str | Path, exc: BaseException | None = None) -> DiskFullError:
    """The ``DiskFullError`` for a failed write of ``what`` to ``path``, after giving every
    reserve on that disk back and halting every dispatcher of the process whose cache is there,
    or that has none (so the requests in flight are stored, and no new one is sent). Raise it."""
    if isinstance(exc, DiskFullError):
        return exc
    code = getattr(exc, "errno", None)
    reason = _REASONS.get(code, "database or disk is full") if code else "no space left on device"
    if getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL:
        reason = "database or disk is full"
    error = DiskFullError(what, str(path), free=free_space(path), reason=reason)
    full = device(path)
    with _guard:
        reserves = [r for r in _reserves if _same_disk(r.device, full)]
        listeners = [k for k, dev in _listeners.items() if _same_disk(dev, full)]
    for reserve in reserves:
        reserve.release()
    for listener in listeners:
        listener.halt(error)
    log.debug("disk full: %s (%r)", error, exc)
    return error


class Reserve:
    """``size`` bytes taken on the disk of ``path`` (a file of that name) until ``release``:
    the room that stores the answers in flight when the disk fills up. ``take`` raises
    ``DiskFullError`` when the disk has no such room: better to stop before sending a request
    than after paying for answers that cannot be stored."""

    def __init__(self, path: str | Path, size: int = RESERVE_BYTES, *, what: str) -> None:
        self.path, self.size, self.what = Path(path), size, what
        self.held = False
        self.device: int | None = None

    def take(self) -> Reserve:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            try:
                _allocate(fd, self.size)
            finally:
                os.close(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                self.path.unlink()
            if is_disk_full(exc):
                kept = f"{self.size // 1024} KB are kept free to store the answers in flight"
                if exc.errno == errno.EFBIG:
                    reason = f"{kept}, and files may not grow that large here (ulimit -f)"
                else:
                    reason = f"{kept}, and the disk has less"
                where = self.path.with_name(self.path.name.removesuffix(".reserve"))
                raise DiskFullError(
                    self.what, str(where), free=free_space(self.path), reason=reason
                ) from None
            raise
        self.held = True
        self.device = device(self.path)
        with _guard:
            _reserves.add(self)
        return self

    def release(self) -> None:
        """Give the space back (idempotent)."""
        if not self.held:
            return
        self.held = False
        with contextlib.suppress(OSError):
            self.path.unlink()


def _allocate(fd: int, size: int) -> None:
    """Make the file ``fd`` take ``size`` bytes of the disk (not a sparse file)."""
    if hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(fd, 0, size)
            return
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, getattr(errno, "ENOTSUP", 0)):
                raise
    if os.fstat(fd).st_size >= size:  # written whole by an earlier run
        return
    block = b"\0" * 65536
    written = 0
    while written < size:
        written += os.pwrite(fd, block[: size - written], written)
    os.fsync(fd)

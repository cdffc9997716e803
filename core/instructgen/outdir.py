"""Output folders: which folders are instructgen's to write, one writer at a time, and folders
replaced in one step.

A folder is instructgen's when it does not exist, is empty, holds the marker file
(``.instructgen.json``, written when a run or ``save()`` first claims it) or holds only what
instructgen writes (a dataset saved by an earlier version: ``metadata.json`` + ``data/``, the
caches, ``run.json``, exports). Any other folder is refused before anything is written or
deleted, so ``--out .`` in a project never touches the project's files.

Writers hold a lock file next to what they write (``fcntl.lockf``: the kernel releases it when
the process ends, even by ``kill -9``, so a killed run's lock is simply taken over). The lock
file records who holds it, and a second writer is refused at once with that process's pid, host
and command. Locks are re-entrant inside one process (several caches of one run share them).
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import json
import os
import re
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from instructgen.errors import FolderInUseError, OutputFolderError

try:  # POSIX; elsewhere folders are still checked, but not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "LOCK_NAME",
    "MARKER_NAME",
    "FolderLock",
    "claim",
    "hold_lock",
    "is_ours",
    "is_user_cache",
    "lock_database",
    "lock_output",
    "make_workdir",
    "output_folder",
    "remove_workdir",
    "replace_folder",
    "sweep_workdirs",
    "user_cache_dir",
]

MARKER_NAME = ".instructgen.json"
LOCK_NAME = ".instructgen.lock"
_MARKER = {"format": "instructgen-output", "version": 1}

# What instructgen itself writes into an output folder (earlier versions included), so a folder
# made by a version without the marker is still recognised. ``data`` counts only next to an
# instructgen metadata.json.
_OWN_NAMES = (
    MARKER_NAME,
    LOCK_NAME,
    "run.json",
    "metadata.json",
    "report.html",
    "dataset.*",
    "cache.sqlite3*",
    "cache-ray-*.sqlite3*",
    "extract-cache.sqlite3*",
    ".*.tmp-*",
    ".data.tmp-*",
    ".data.old-*",
    ".instructgen-*",
    ".rows-*",
)
_RUN_NAMES = ("run.json", "cache.sqlite3", "extract-cache.sqlite3")


def _has_dataset_metadata(folder: Path) -> bool:
    try:
        meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == "instructgen-dataset"


def is_ours(folder: str | Path) -> bool:
    """Whether instructgen may write into (and replace its own files in) ``folder``."""
    folder = Path(folder)
    if not folder.exists():
        return True
    if not folder.is_dir():
        return False
    if (folder / MARKER_NAME).is_file():
        return True
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    if not names:
        return True
    dataset = _has_dataset_metadata(folder)
    for name in names:
        if name == "data" and dataset:
            continue
        if not any(fnmatch.fnmatchcase(name, pattern) for pattern in _OWN_NAMES):
            return False
    # only names instructgen writes; at least one that says a run or save() wrote them
    return dataset or any(n in names for n in _RUN_NAMES)


def _strerror(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def claim(folder: str | Path, *, what: str = "output folder") -> Path:
    """Make sure ``folder`` is instructgen's to write: create it (with its parents) if needed
    and leave the marker in it. Raises ``OutputFolderError`` (exit 2), touching nothing, for a
    file, a folder holding other files, or a folder that cannot be created or written."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(
            f"{what} {folder} is an existing file, not a folder; choose a folder name"
        )
    if not is_ours(folder):
        raise OutputFolderError(
            f"{what} {folder} holds files that are not instructgen's; nothing was written "
            "there. Choose an empty or new folder (or one an earlier run wrote)"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputFolderError(f"cannot create {what} {folder}: a file is in the way") from None
    except OSError as exc:
        raise OutputFolderError(f"cannot create {what} {folder}: {_strerror(exc)}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputFolderError(f"{what} {folder} is not writable (permission denied)")
    marker = folder / MARKER_NAME
    if not marker.is_file():
        try:
            _write_atomic(marker, json.dumps({**_MARKER, "created": time.time()}) + "\n")
        except OSError as exc:
            raise OutputFolderError(
                f"cannot write into {what} {folder}: {_strerror(exc)}"
            ) from None
    return folder


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# -- locks ---------------------------------------------------------------------------------------


class FolderLock:
    """A held lock; ``release()`` (or leaving the ``with`` block) gives it back."""

    def __init__(self, key: str) -> None:
        self.key = key
        self._released = False

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        with _held_guard:
            fd, count = _held[self.key]
            if count > 1:
                _held[self.key] = (fd, count - 1)
                return
            del _held[self.key]
        with contextlib.suppress(OSError):
            os.close(fd)  # closing the descriptor releases the lock

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_held: dict[str, tuple[int, int]] = {}  # lock file → (descriptor, holders in this process)
_held_guard = threading.Lock()


def _holder_text(fd: int) -> str:
    try:
        raw = os.pread(fd, 4096, 0)
        info: dict[str, Any] = json.loads(raw.decode("utf-8", "replace") or "{}")
    except (OSError, ValueError):
        return "another process"
    command = str(info.get("command", ""))[:200]
    return f"process {info.get('pid', '?')} on {info.get('host', '?')}" + (
        f" ({command})" if command else ""
    )


_SECRET_NAME = re.compile(r"key|token|secret|password", re.I)
_SECRET_VALUE = re.compile(r"\b(sk|pk|rk)-[\w-]{8,}")
_URL_PASSWORD = re.compile(r"//[^/@\s]+:[^/@\s]+@")


def _command() -> str:
    """This process's command line for the next one to read, secrets masked (a key passed as
    an option value, a password in a URL)."""
    words: list[str] = []
    for i, arg in enumerate(sys.argv):
        previous = sys.argv[i - 1] if i else ""
        named = arg.split("=", 1)[0] if "=" in arg else ""
        if ("=" not in previous and _SECRET_NAME.search(previous)) or _SECRET_NAME.search(named):
            arg = arg.split("=", 1)[0] + "=***" if "=" in arg else "***"
        arg = _URL_PASSWORD.sub("//***@", _SECRET_VALUE.sub("***", arg))
        words.append(arg.encode("utf-8", "backslashreplace").decode())
    return " ".join(words)


def hold_lock(lock_file: str | Path, *, what: str) -> FolderLock:
    """Take the lock ``lock_file`` for writing ``what`` (named in the error). Raises
    ``FolderInUseError`` at once when another live process holds it."""
    path = Path(lock_file)
    key = os.path.realpath(path)
    with _held_guard:
        if key in _held:
            fd, count = _held[key]
            _held[key] = (fd, count + 1)
            return FolderLock(key)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise OutputFolderError(f"cannot lock {what}: {path}: {_strerror(exc)}") from None
        if fcntl is not None:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _holder_text(fd)
                os.close(fd)
                if exc.errno in (errno.EACCES, errno.EAGAIN):
                    raise FolderInUseError(
                        f"{what} is in use by {holder}; wait for it to finish, or stop it "
                        "(a run that was killed leaves no lock behind)"
                    ) from None
                raise OutputFolderError(f"cannot lock {what}: {_strerror(exc)}") from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": _command()[:500],
            "since": time.time(),
        }
        with contextlib.suppress(OSError):  # who holds it is a courtesy for the next one
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8", "backslashreplace"), 0)
        _held[key] = (fd, 1)
        return FolderLock(key)


def lock_output(folder: str | Path, *, what: str = "output folder") -> FolderLock:
    """Claim ``folder`` (see ``claim``) and take its lock; ``release()`` it when done."""
    path = claim(folder, what=what)
    return hold_lock(path / LOCK_NAME, what=f"{what} {path}")


def user_cache_dir() -> Path:
    """The user-wide cache folder: ``$XDG_CACHE_HOME/instructgen`` (``~/.cache/instructgen``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "instructgen"


def is_user_cache(path: str | Path) -> bool:
    """Whether the database ``path`` is in the user-wide cache folder, which any number of
    processes share (SQLite's own locking keeps it consistent); a run's own caches (in its
    output folder, or a path given) have one writing process at a time."""
    try:
        return os.path.realpath(Path(path).parent) == os.path.realpath(user_cache_dir())
    except OSError:
        return False


def lock_database(path: str | Path) -> FolderLock | None:
    """The writer's lock of a cache database (``PATH.lock``), its folder created if needed:
    ``FolderInUseError`` when another process writes it, ``OutputFolderError`` when the folder
    cannot be made. ``None`` (no lock) for a database of the shared user-wide cache folder."""
    db = Path(path)
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputFolderError(
            f"cannot create the cache folder {db.parent}: {_strerror(exc)}"
        ) from None
    for part in (db, db.with_name(db.name + "-wal")):
        if part.exists() and not os.access(part, os.R_OK | os.W_OK):
            raise OutputFolderError(f"the cache {part} is read-only; make it writable")
    if is_user_cache(db):
        return None
    return hold_lock(db.with_name(db.name + ".lock"), what=f"cache {db}")


@contextlib.contextmanager
def output_folder(folder: str | Path, *, what: str = "output folder") -> Iterator[Path]:
    """Claim ``folder`` (see ``claim``) and hold its lock while the block runs."""
    with lock_output(folder, what=what):
        yield Path(folder)


# -- replacing a folder in one step --------------------------------------------------------------


def replace_folder(staged: Path, target: Path) -> None:
    """Put the folder ``staged`` at ``target`` by renames only: whoever looks sees the old
    folder or the new one, never a mix. ``target`` (when it exists) must be instructgen's own:
    the caller checked its parent folder is claimed."""
    if not target.exists():
        os.replace(staged, target)
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if old.exists():
        shutil.rmtree(old)
    os.replace(target, old)
    try:
        os.replace(staged, target)
    except OSError:
        os.replace(old, target)  # put the old one back
        raise
    shutil.rmtree(old, ignore_errors=True)


# -- a run's working folders ---------------------------------------------------------------------

WORKDIR_PREFIX = ".rows-"
# What a streamed run writes into its working folder: its rows as JSON lines, then the Arrow
# file the dataset is memory-mapped from, and the folder's lock.
_WORKDIR_FILES = frozenset({"rows.jsonl", "rows.arrow", LOCK_NAME})
_workdir_locks: dict[str, FolderLock] = {}


def make_workdir(parent: Path | None) -> Path:
    """A new working folder for a run's rows: ``PARENT/.rows-*`` (on the same disk as the
    dataset saved from them) or a temporary folder. The folder is locked until
    ``remove_workdir``; folders of runs that were killed are removed first (``sweep_workdirs``)."""
    import tempfile

    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
        sweep_workdirs(parent)
    prefix = WORKDIR_PREFIX if parent is not None else "instructgen-rows-"
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    lock = hold_lock(folder / LOCK_NAME, what=f"working folder {folder}")
    with _held_guard:
        _workdir_locks[str(folder)] = lock
    return folder


def remove_workdir(folder: str | Path) -> None:
    """Remove a working folder from ``make_workdir`` and give its lock back."""
    shutil.rmtree(folder, ignore_errors=True)
    with _held_guard:
        lock = _workdir_locks.pop(str(folder), None)
    if lock is not None:
        lock.release()


def sweep_workdirs(parent: Path) -> list[Path]:
    """Remove the working folders in ``parent`` left by runs that ended without removing them
    (killed): a ``.rows-*`` folder holding only what a run writes there, whose lock no live
    process holds (the kernel released a killed process's lock). Returns the folders removed."""
    removed: list[Path] = []
    if fcntl is None:  # no locks here to tell a live run's folder from a killed one's
        return removed
    try:
        candidates = [p for p in parent.iterdir() if p.name.startswith(WORKDIR_PREFIX)]
    except OSError:
        return removed
    for folder in candidates:
        try:
            if folder.is_symlink() or not folder.is_dir():
                continue
            names = set(os.listdir(folder))
            if not names <= _WORKDIR_FILES:
                continue  # not only a run's files: not ours to delete
            if LOCK_NAME not in names and time.time() - folder.stat().st_mtime < 60:
                continue  # just made, its lock not taken yet
        except OSError:
            continue
        lock_file = folder / LOCK_NAME
        with _held_guard:
            if os.path.realpath(lock_file) in _held:
                continue  # this process's own, still in use
        try:
            lock = hold_lock(lock_file, what=f"working folder {folder}")
        except (FolderInUseError, OutputFolderError):
            continue  # a live run's (or not lockable here): left alone
        try:
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            lock.release()
        if not folder.exists():
            removed.append(folder)
    return removed

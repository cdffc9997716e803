"""Finding the files of a directory run: deterministic, loop-safe, confined to the folder.

The walk keeps its own stack (no recursion: any depth of folders is fine). Symbolic links are
followed only while their target stays inside the folder (``follow_symlinks`` lifts that), so
a link to ``/etc`` never sends a system file to a model. File names that are not valid UTF-8 or
hold control characters are escaped in what is shown, stored and sent (``printable_name``); the
file itself is still read through its real name.
"""

from __future__ import annotations

import errno
import fnmatch
import logging
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from instructgen.documents.types import ExtractOptions, printable_name
from instructgen.errors import ConfigError
from instructgen.limits import DEFAULT_MAX_BYTES

log = logging.getLogger("instructgen.documents")

__all__ = ["LEAVES_THE_FOLDER", "Found", "discover", "printable_name"]

LEAVES_THE_FOLDER = "symlink leaves the folder"
_OUTPUT_MARKER = ".instructgen.json"  # what an instructgen output folder holds (see outdir)


@dataclass(frozen=True)
class Found:
    path: Path  # absolute
    rel: str  # relative to the root, with forward slashes, printable (see printable_name)
    size: int = 0
    skip: str | None = None  # why this file will not be read
    real: str | None = None  # where the path leads once symbolic links are resolved


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    """Glob match on the relative path or the file name; ``**/`` also matches no folder at
    all, as in .gitignore (``**/*.txt`` matches ``a.txt``, ``docs/**/*.md`` ``docs/a.md``)."""
    name = rel.rsplit("/", 1)[-1]
    for pattern in patterns:
        for p in {pattern, pattern.replace("**/", "")}:
            if fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p):
                return True
    return False


def _inside(real: str, root_real: str) -> bool:
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def _entries(directory: str) -> list[os.DirEntry[str]]:
    with os.scandir(directory) as it:
        return sorted(it, key=lambda e: e.name)


def discover_files(
    root: str | Path,
    limits: ExtractOptions,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    skip_dirs: Sequence[str | Path] = (),
) -> list[Found]:
    """``discover`` for a directory run: under its limits (the size limit, whether links may
    leave the folder); ``ConfigError`` when ``root`` does not exist."""
    if not Path(root).exists():
        raise ConfigError(f"{root}: no such file or directory")
    return discover(
        root,
        include=include,
        exclude=exclude,
        max_bytes=limits.max_bytes,
        follow_symlinks=limits.follow_symlinks,
        skip_dirs=skip_dirs,
    )


def discover(
    root: str | Path,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    include_hidden: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    follow_symlinks: bool = False,
    skip_dirs: Sequence[str | Path] = (),
) -> list[Found]:
    """Every file under ``root`` in sorted order, with a skip reason where one applies.

    A symbolic link whose target lies outside ``root`` is reported as ``symlink leaves the
    folder`` and not read, unless ``follow_symlinks``; each real folder is visited once (no
    loops); a link that loops or dangles is reported, not fatal. ``include``/``exclude`` are
    glob patterns matched against the relative path and the file name. Folders in
    ``skip_dirs`` and instructgen output folders (they hold its marker file) are left out,
    each said once in the log.
    """
    return list(
        _walk(
            Path(root),
            include=include,
            exclude=exclude,
            include_hidden=include_hidden,
            max_bytes=max_bytes,
            follow_symlinks=follow_symlinks,
            skip_dirs=skip_dirs,
        )
    )


def _walk(
    root: Path,
    *,
    include: Sequence[str],
    exclude: Sequence[str],
    include_hidden: bool,
    max_bytes: int,
    follow_symlinks: bool,
    skip_dirs: Sequence[str | Path],
) -> Iterator[Found]:
    root_real = os.path.realpath(root)
    if root.is_file():
        yield _entry(root, printable_name(root.name), max_bytes, root_real)
        return
    skip_real = {os.path.realpath(d) for d in skip_dirs}
    seen_dirs: set[tuple[int, int]] = set()
    try:
        st = os.stat(root)
        seen_dirs.add((st.st_dev, st.st_ino))
        top = _entries(str(root))
    except OSError as exc:
        yield Found(root, ".", 0, f"unreadable folder: {exc.strerror}", root_real)
        return
    # one frame per open folder: its entries still to look at, its rel path and real path
    stack: list[tuple[Iterator[os.DirEntry[str]], str, str]] = [(iter(top), "", root_real)]
    while stack:
        entries, rel_dir, real_dir = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        name = entry.name
        if not include_hidden and name.startswith("."):
            continue
        path = Path(entry.path)
        rel = f"{rel_dir}/{printable_name(name)}" if rel_dir else printable_name(name)
        try:
            is_link = entry.is_symlink()
        except OSError:
            is_link = False
        real = os.path.realpath(path) if is_link else os.path.join(real_dir, name)
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_link and not follow_symlinks and not _inside(real, root_real):
            if is_dir or not _filtered_out(rel, include, exclude):
                yield Found(path, rel, 0, LEAVES_THE_FOLDER, real)
            continue
        if not is_dir:
            if not _filtered_out(rel, include, exclude):
                yield _entry(path, rel, max_bytes, real)
            continue
        if real in skip_real or os.path.isfile(os.path.join(real, _OUTPUT_MARKER)):
            log.warning("leaving out %s: an instructgen output folder inside the input folder", rel)
            continue
        try:
            st = os.stat(path)
        except OSError as exc:
            yield Found(path, rel, 0, f"unreadable folder: {exc.strerror}", real)
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            if is_link:
                yield Found(path, rel, 0, "symlink loop (folder already read)", real)
            continue
        seen_dirs.add(key)
        try:
            children = _entries(str(path))
        except OSError as exc:
            why = "path too long" if exc.errno == errno.ENAMETOOLONG else exc.strerror
            yield Found(path, rel, 0, f"unreadable folder: {why}", real)
            continue
        stack.append((iter(children), rel, real))


def _filtered_out(rel: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    if include and not _matches(rel, include):
        return True
    return bool(exclude) and _matches(rel, exclude)


def _entry(path: Path, rel: str, max_bytes: int, real: str | None = None) -> Found:
    try:
        st = path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Found(path, rel, 0, "symlink loop", real)
        if path.is_symlink():
            return Found(path, rel, 0, "broken symlink", real)
        return Found(path, rel, 0, f"cannot stat: {exc.strerror}", real)
    if not stat.S_ISREG(st.st_mode):  # never opened: reading a named pipe waits forever
        kind = (
            "named pipe"
            if stat.S_ISFIFO(st.st_mode)
            else "socket"
            if stat.S_ISSOCK(st.st_mode)
            else "device"
        )
        return Found(path, rel, 0, f"not a regular file ({kind})", real)
    if st.st_size == 0:
        return Found(path, rel, 0, "empty file", real)
    if st.st_size > max_bytes:
        return Found(
            path,
            rel,
            st.st_size,
            f"over the size limit ({st.st_size:,} > {max_bytes:,} bytes)",
            real,
        )
    if not os.access(path, os.R_OK):
        return Found(path, rel, st.st_size, "unreadable (permission denied)", real)
    return Found(path, rel, st.st_size, None, real)

"""Finding the files of a directory run: recursive, deterministic, loop-safe."""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from instructgen.limits import DEFAULT_MAX_BYTES

__all__ = ["Found", "discover"]


@dataclass(frozen=True)
class Found:
    path: Path  # absolute
    rel: str  # relative to the root, with forward slashes
    size: int = 0
    skip: str | None = None  # why this file will not be read


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    """Glob match on the relative path or the file name; ``**/`` also matches no folder at
    all, as in .gitignore (``**/*.txt`` matches ``a.txt``, ``docs/**/*.md`` ``docs/a.md``)."""
    name = rel.rsplit("/", 1)[-1]
    for pattern in patterns:
        for p in {pattern, pattern.replace("**/", "")}:
            if fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p):
                return True
    return False


def discover(
    root: str | Path,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    include_hidden: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> list[Found]:
    """Every file under ``root`` in sorted order, with a skip reason where one applies.

    Symbolic links are followed, but each real directory is visited once (no loops); a link
    that loops or dangles is reported, not fatal. ``include``/``exclude`` are glob patterns
    matched against the relative path and the file name.
    """
    root = Path(root)
    if root.is_file():
        return [_entry(root, root.name, max_bytes)]
    out: list[Found] = []
    seen_dirs: set[tuple[int, int]] = set()

    def walk(directory: Path, rel_dir: str) -> None:
        try:
            st = directory.stat()
        except OSError:
            return
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            return
        seen_dirs.add(key)
        try:
            names = sorted(os.listdir(directory))
        except OSError as exc:
            out.append(Found(directory, rel_dir or ".", 0, f"unreadable folder: {exc.strerror}"))
            return
        for name in names:
            if not include_hidden and name.startswith("."):
                continue
            path = directory / name
            rel = f"{rel_dir}/{name}" if rel_dir else name
            try:
                is_dir = path.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if path.is_symlink():
                    try:
                        if (path.stat().st_dev, path.stat().st_ino) in seen_dirs:
                            out.append(Found(path, rel, 0, "symlink loop (folder already read)"))
                            continue
                    except OSError:
                        pass
                walk(path, rel)
                continue
            if include and not _matches(rel, include):
                continue
            if exclude and _matches(rel, exclude):
                continue
            out.append(_entry(path, rel, max_bytes))

    walk(root, "")
    return out


def _entry(path: Path, rel: str, max_bytes: int) -> Found:
    try:
        st = path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Found(path, rel, 0, "symlink loop")
        if path.is_symlink():
            return Found(path, rel, 0, "broken symlink")
        return Found(path, rel, 0, f"cannot stat: {exc.strerror}")
    if not stat.S_ISREG(st.st_mode):  # never opened: reading a named pipe waits forever
        kind = (
            "named pipe"
            if stat.S_ISFIFO(st.st_mode)
            else "socket"
            if stat.S_ISSOCK(st.st_mode)
            else "device"
        )
        return Found(path, rel, 0, f"not a regular file ({kind})")
    if st.st_size == 0:
        return Found(path, rel, 0, "empty file")
    if st.st_size > max_bytes:
        return Found(
            path, rel, st.st_size, f"over the size limit ({st.st_size:,} > {max_bytes:,} bytes)"
        )
    if not os.access(path, os.R_OK):
        return Found(path, rel, st.st_size, "unreadable (permission denied)")
    return Found(path, rel, st.st_size)

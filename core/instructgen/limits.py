"""Per-file limits of directory runs. A module of its own so that the command line shows the
defaults without importing the extraction machinery."""

from __future__ import annotations

__all__ = ["DEFAULT_FILE_TIMEOUT", "DEFAULT_MAX_BYTES", "DEFAULT_MAX_MEMORY_MB"]

DEFAULT_MAX_BYTES = 200 * 1024 * 1024
"""Files larger than this are skipped unread."""

DEFAULT_FILE_TIMEOUT = 300.0
"""Seconds a worker process may spend on one file."""

DEFAULT_MAX_MEMORY_MB = 4096
"""Megabytes a worker process, with the programs it starts, may use for one file."""

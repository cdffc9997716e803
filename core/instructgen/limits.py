"""Per-file limits of directory runs, and the one timeout of a request. A module of its own so
that the command line shows the defaults without importing the extraction machinery."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

from instructgen.errors import ConfigError

__all__ = [
    "DEFAULT_FILE_TIMEOUT",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_MEMORY_MB",
    "DEFAULT_REQUEST_TIMEOUT",
    "check_dataset_size",
]

DEFAULT_MAX_BYTES = 200 * 1024 * 1024
"""Files larger than this are skipped unread."""

DEFAULT_FILE_TIMEOUT = 300.0
"""Seconds a worker process may spend on one file."""

DEFAULT_REQUEST_TIMEOUT = 120.0
"""Seconds to wait for one answer: ``--timeout``, owned by ``DispatchConfig.timeout``. The
dispatcher bounds each call by it and gives it to the engine's HTTP client, unless the engine
was built with a ``timeout`` of its own."""

DEFAULT_MAX_MEMORY_MB = 4096
"""Megabytes a worker process, with the programs it starts, may use for one file."""


def check_dataset_size(
    num_instructions_for_finetuning: int, num_instructions: int, max_instances_per_task: int
) -> None:
    """Refuse, before anything is sent, a dataset size that the instruction cap can never
    reach: each generated instruction gives at most ``max_instances_per_task`` examples."""
    most = num_instructions * max_instances_per_task
    if num_instructions_for_finetuning > most:
        need = -(-num_instructions_for_finetuning // max_instances_per_task)
        raise ConfigError(
            f"-n/num_instructions_for_finetuning {num_instructions_for_finetuning} is more than "
            f"--num-instructions {num_instructions} can ever give ({num_instructions} "
            f"instructions x at most {max_instances_per_task} instances = {most} examples); "
            f"raise --num-instructions to at least {need} or lower -n"
        )


R = TypeVar("R")


async def with_timeout(call: Awaitable[R], delay: float) -> R:
    """``call``'s result, or ``TimeoutError`` after ``delay`` seconds."""
    if sys.version_info >= (3, 11):  # asyncio.timeout: no extra task per request
        async with asyncio.timeout(delay):
            return await call
    return await asyncio.wait_for(call, delay)  # pragma: no cover - Python 3.10

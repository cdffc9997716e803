"""Embedded in an async service: ``agenerate_dataset`` never holds the caller's event loop
for more than 100 ms (imports, plugin loading and file reading run in worker threads)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import SHARED, TEST_KEY
from selfinstruct_responder import respond
from wire_server import WireServer

# A fresh interpreter, so nothing is imported yet: the first call pays every import, as a web
# service's first request would.
SCRIPT = """
import asyncio, logging, sys, time

slow = []

class Catch(logging.Handler):
    def emit(self, record):
        if "Executing" in record.getMessage():
            slow.append(record.getMessage())

logging.getLogger("asyncio").addHandler(Catch())
logging.getLogger("asyncio").setLevel(logging.WARNING)

from instructgen import InstructionDataset  # a service imports the library at start-up

async def main():
    loop = asyncio.get_running_loop()
    loop.slow_callback_duration = 0.1
    ds = await InstructionDataset.agenerate_dataset(
        sys.argv[1], "openai:gpt-4o-mini", 6, 6, cache=False,
    )
    assert len(ds) == 6, len(ds)

import os
os.environ["OPENAI_BASE_URL"] = sys.argv[2]
os.environ["OPENAI_API_KEY"] = sys.argv[3]
asyncio.run(main(), debug=True)
print("\\n".join(slow))
"""


def test_agenerate_dataset_never_holds_the_loop_over_100_ms(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    with WireServer() as server:
        server.responder = respond
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(tasks), server.openai_base_url, TEST_KEY],
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", done.stdout

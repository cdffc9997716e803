"""Embedded in an async service: ``agenerate_dataset`` never holds the caller's event loop
(imports, plugin loading and file reading run in worker threads).

What holds a loop is synchronous work on its thread, so that is what the test measures, by
cause and independently of how busy the machine is: the CPU time each callback spends on the
loop thread (``time.thread_time``: another process's load does not add to it, where it
stretches wall-clock time), the modules imported and the files opened on the loop thread while
a callback runs (audit hooks). The wall-clock figure (no callback over 100 ms on an idle
machine) is measured by ``benchmarks/loop_hold.py``."""

from __future__ import annotations

import json
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
import asyncio, json, os, sys, threading, time

loop_thread = threading.get_ident()
inside = [False]  # a loop callback is running
imports, opened = [], []

def audit(event, args):
    if not inside[0] or threading.get_ident() != loop_thread:
        return
    if event == "import":
        imports.append(args[0])
    elif event == "open" and isinstance(args[0], str) and not args[0].endswith((".py", ".pyc")):
        opened.append(args[0])  # (an import's own files are counted as the import)

sys.addaudithook(audit)
from instructgen import InstructionDataset  # a service imports the library at start-up

worst = {"cpu_s": 0.0, "callback": ""}
run = asyncio.events.Handle._run

def timed_run(self):
    inside[0] = True
    started = time.thread_time()
    try:
        return run(self)
    finally:
        inside[0] = False
        cpu = time.thread_time() - started
        if cpu > worst["cpu_s"]:
            worst.update(cpu_s=cpu, callback=repr(self)[:300])

asyncio.events.Handle._run = timed_run

async def main():
    ds = await InstructionDataset.agenerate_dataset(
        sys.argv[1], "openai:gpt-4o-mini", 6, 6, cache=False,
    )
    assert len(ds) == 6, len(ds)

os.environ["OPENAI_BASE_URL"] = sys.argv[2]
os.environ["OPENAI_API_KEY"] = sys.argv[3]
asyncio.run(main())
print(json.dumps({"imports": imports, "opened": opened, **worst}))
"""

# The default executor's own modules, imported when the first worker thread is started.
EXECUTOR = {"concurrent.futures.thread", "queue", "_queue"}


def test_agenerate_dataset_does_no_heavy_work_on_the_loop_thread(tmp_path: Path) -> None:
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
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    # No import on the loop thread (an SDK, datasets, a plugin: 0.3-1 s each) but the
    # executor's own, and no file read there but the package's small prompt templates.
    assert set(seen["imports"]) <= EXECUTOR, seen["imports"]
    package = Path(__import__("instructgen").__file__).parent
    assert str(tasks) not in seen["opened"]
    assert all(Path(p).resolve().is_relative_to(package.resolve()) for p in seen["opened"]), seen
    # The longest callback's CPU time on the loop thread: about 10 ms measured, idle or not.
    assert seen["cpu_s"] < 0.1, seen

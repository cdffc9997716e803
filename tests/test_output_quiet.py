"""What people see: a generate piped through `cat` has no carriage returns and no `datasets`
bars; the library, embedded, writes nothing to stdout or stderr."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import SHARED, TEST_KEY
from selfinstruct_responder import respond
from wire_server import WireServer

LIBRARY_RUN = """
import sys
from instructgen import InstructionDataset, engine
eng = engine("openai", api_key=sys.argv[2], base_url=sys.argv[3])
ds = InstructionDataset.generate_dataset(path=sys.argv[1], engine=eng,
        num_instructions_for_finetuning=6, num_instructions=6, cache=False)
ds.save(sys.argv[4])
ds.export("parquet", sys.argv[4] + "/dataset.parquet")
assert len(InstructionDataset.load(sys.argv[4])) == 6
"""


def test_generate_through_a_pipe_has_no_carriage_returns(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    with WireServer() as server:
        server.responder = respond
        server.latency = 0.05
        cmd = [
            sys.executable,
            "-m",
            "instructgen",
            "generate",
            str(tasks),
            "--engine",
            "openai",
            "--base-url",
            server.openai_base_url,
            "-n",
            "12",
            "--num-instructions",
            "12",
            "--concurrency",
            "2",
            "--format",
            "parquet",
            "--out",
            str(tmp_path / "out"),
        ]
        env = {**os.environ, "OPENAI_API_KEY": TEST_KEY}
        done = subprocess.run(cmd, env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    assert b"\r" not in done.stdout + done.stderr
    assert b"Saving the dataset" not in done.stderr and b"examples/s" not in done.stderr
    assert done.stdout.decode().startswith("wrote 12 of 12 examples")


def test_the_library_writes_nothing_to_stdout_or_stderr(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    with WireServer() as server:
        server.responder = respond
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                LIBRARY_RUN,
                str(tasks),
                TEST_KEY,
                server.openai_base_url,
                str(tmp_path / "ds"),
            ],
            capture_output=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"" and done.stderr == b""

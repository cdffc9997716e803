"""Directory runs stream: memory stays flat as the corpus grows, the first request goes out
before the last file is read, the dataset is the one the extract-then-generate path gives and
it comes back memory-mapped from disk."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import SHARED

from instructgen import InstructionDataset

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import json, os, random, resource, sys, time
    from pathlib import Path

    from instructgen import Extracted, Extractor, InstructionDataset, hookimpl, register_plugin
    from instructgen.documents.types import ExtractOptions

    base_url, mode, docs, out = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])


    class Slow(Extractor):
        name = "slow-test"
        extensions = ("slow",)

        def extract(self, path):
            # waits (at most 20 s) for the server to have seen a request: with requests sent
            # only after every file is read, none comes
            deadline = time.time() + 20
            while not (out / "seen-request").exists() and time.time() < deadline:
                time.sleep(0.05)
            (out / "slow-done").write_text(repr(time.time()))
            return Extracted(path.read_text())


    class SlowPlugin:
        @hookimpl
        def register_extractors(self, registry):
            registry.add(Slow)


    def corpus(megabytes):
        docs.mkdir(parents=True)
        rng = random.Random(7)
        words = [f"w{i}" for i in range(5000)]
        for i in range(megabytes):
            paras = []
            size = 0
            while size < 1_000_000:
                p = " ".join(rng.choice(words) for _ in range(120)) + "."
                paras.append(p)
                size += len(p) + 2
            (docs / f"doc{i:04d}.txt").write_text("\\n\\n".join(paras))


    if mode == "memory":
        corpus(int(sys.argv[5]))
    register_plugin(SlowPlugin(), name="slow-plugin")
    os.environ["OPENAI_API_KEY"] = "sk-stream-test"
    from instructgen.engines import create_engine

    ds = InstructionDataset.generate_dataset_from_dir(
        docs,
        create_engine("openai", base_url=base_url),
        chunk_size=int(sys.argv[6]) if len(sys.argv) > 6 else 20000,
        num_samples_per_chunk=2,
        out=out,
        cache=False,
        limits=ExtractOptions(workers=2),
    )
    done = out / "slow-done"
    started = float(sys.argv[-1]) if mode == "first" else None
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({
        "rows": len(ds),
        "on_disk": ds.on_disk,
        "slow_done": float(done.read_text()) if done.exists() else None,
        "started": started,
        "main_mb": self_kb / 1024,
        "workers_mb": children_kb / 1024,
        "report": ds.run_report["extraction"],
    }))
    """
)


def _run(tmp_path: Path, *args: str) -> dict[str, Any]:
    """The script in a fresh process against a wire server in this one (whose record of the
    requests must not count in the run's memory); adds ``calls`` and ``first_request``."""
    from selfinstruct_responder import respond
    from wire_server import WireCall, WireServer

    first: list[float] = []

    def responder(call: WireCall) -> str | list[str]:
        if not first:
            first.append(time.time())
            (tmp_path / "out").mkdir(exist_ok=True)
            (tmp_path / "out" / "seen-request").write_text("")
        return respond(call)

    tmp_path.mkdir(parents=True, exist_ok=True)
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "core"), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    with WireServer() as server:
        server.responder = responder
        r = subprocess.run(
            [sys.executable, str(script), server.openai_base_url, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            cwd=tmp_path,
        )
        calls = len(server.calls)
    assert r.returncode == 0, r.stderr[-3000:]
    res: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    return {**res, "calls": calls, "first_request": first[0] if first else None}


@pytest.mark.slow
def test_memory_stays_flat_as_the_corpus_grows(tmp_path: Path) -> None:
    small = _run(
        tmp_path / "a",
        "memory",
        str(tmp_path / "a" / "docs"),
        str(tmp_path / "a" / "out"),
        "20",
        "50000",
    )
    large = _run(
        tmp_path / "b",
        "memory",
        str(tmp_path / "b" / "docs"),
        str(tmp_path / "b" / "out"),
        "80",
        "50000",
    )
    assert large["report"]["read"] == 80 and small["report"]["read"] == 20
    assert large["calls"] > 3 * small["calls"] / 1.2 > 0
    assert large["rows"] > 3 * small["rows"] / 1.2 > 0
    # 60 MB more text; the main process grows by far less (the old path grew by several
    # times the text)
    grown = large["main_mb"] - small["main_mb"]
    assert grown < 25, (small, large)
    assert large["workers_mb"] < 300, large
    assert large["on_disk"]


def test_first_request_goes_out_before_the_last_file_is_read(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The first document explains streaming. " * 200)
    (docs / "b.txt").write_text("The second document explains queues. " * 200)
    (docs / "z.slow").write_text("A slow document about patience. " * 200)
    (tmp_path / "out").mkdir()
    out = str(tmp_path / "out")
    res = _run(tmp_path, "first", str(docs), out, "0", "20000", repr(time.time()))
    assert res["report"]["read"] == 3
    assert res["first_request"] is not None and res["slow_done"] is not None
    assert res["first_request"] < res["slow_done"], res
    assert res["slow_done"] - res["started"] < 15, res  # it did not wait in vain


def test_the_dataset_does_not_depend_on_the_order_files_are_read_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selfinstruct_responder import respond
    from wire_server import WireServer

    from instructgen.engines import create_engine
    from instructgen.runs import LocalExecutor

    class Backwards(LocalExecutor):
        """Reads every file first, then hands the results over last file first: the other end
        of the orders in which an executor's results can come."""

        def read(self, jobs, options, stop):  # type: ignore[no-untyped-def]
            return reversed(list(super().read(jobs, options, stop)))

    corpus = tmp_path / "corpus"
    shutil.copytree(
        SHARED / "corpus",
        corpus,
        ignore=shutil.ignore_patterns("NOTICE.md", "*.ogg", "*.mp3", "*.wav", "*.m4a"),
    )
    monkeypatch.setenv("OPENAI_API_KEY", "sk-stream-test")
    with WireServer() as server:
        server.responder = respond
        engine = create_engine("openai", base_url=server.openai_base_url)
        common = {"chunk_size": 3000, "num_samples_per_chunk": 2, "cache": False}
        streamed = InstructionDataset.generate_dataset_from_dir(
            corpus, engine, out=tmp_path / "s", **common
        )
        backwards = InstructionDataset.generate_dataset_from_dir(
            corpus, engine, out=tmp_path / "b", executor=Backwards(), **common
        )
    batch = InstructionDataset(list(backwards), backwards.run_report)  # in memory
    assert streamed.on_disk and not batch.on_disk
    assert len(streamed) > 100
    assert list(streamed) == batch.rows
    assert streamed == batch
    keys = ("extraction", "skipped_files", "question_answer_pairs", "failed_chunks")
    for key in (*keys, "question_answer_replies"):
        assert streamed.run_report[key] == batch.run_report[key], key

    def files(ds: InstructionDataset) -> list[dict[str, Any]]:
        return [{**f, "seconds": None} for f in ds.run_report["files"]]  # timings vary

    assert files(streamed) == files(batch)
    assert (
        streamed.run_report["requests"]["requests_completed"]
        == batch.run_report["requests"]["requests_completed"]
    )
    # the disk-backed dataset behaves as the in-memory one
    assert streamed["instruction"] == batch["instruction"]
    assert streamed[0] == batch[0] and streamed[-1] == batch[-1]
    assert streamed[5:9] == batch[5:9]
    assert streamed.to_pandas().equals(batch.to_pandas())
    saved = InstructionDataset.load(streamed.save(tmp_path / "saved"))
    assert saved == batch
    a = streamed.export("jsonl", tmp_path / "s.jsonl").read_text()
    assert a == batch.export("jsonl", tmp_path / "b.jsonl").read_text()


def test_a_wrong_key_stops_a_streamed_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wire_server import WireServer

    from instructgen.engines import create_engine
    from instructgen.errors import AuthenticationError

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(30):
        (docs / f"d{i:02d}.txt").write_text(f"Document {i} says something. " * 400)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    with WireServer() as server:
        server.inject("401", times=10_000)
        engine = create_engine("openai", base_url=server.openai_base_url)
        with pytest.raises(AuthenticationError):
            InstructionDataset.generate_dataset_from_dir(
                docs, engine, chunk_size=1000, out=tmp_path / "out", cache=False
            )
        sent = len(server.calls)
    assert 0 < sent < 30 * 12  # stopped early, not after every chunk was tried
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".rows-")]

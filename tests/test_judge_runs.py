"""The judge role's own limits (--judge-rpm, ...) reach its dispatcher and leave the run's
alone; a judged run without a cache pays for none of the method's requests twice when it asks
the method for more rows; from-dir takes the response and judge engines with --self-instruct."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import judge_responder
import pytest
from click.testing import CliRunner
from conftest import SHARED, TEST_KEY, registered_as_installed
from wire_server import WireServer

from instructgen import InstructionDataset
from instructgen.cli import cli
from instructgen.methods import context as context_mod

instructgen_judge = pytest.importorskip("instructgen_judge")


@pytest.fixture(autouse=True)
def _registered() -> Any:
    yield from registered_as_installed("filters", "llm-judge", instructgen_judge, "judge")


@pytest.fixture
def tasks(tmp_path: Path) -> Path:
    dst = tmp_path / "seed_tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", dst)
    return dst


def _generate(tasks: Path, server: WireServer, out: Path, *extra: str) -> Any:
    return CliRunner().invoke(
        cli,
        [
            "generate",
            str(tasks),
            "--engine",
            "openai",
            "--model",
            "gpt-4o-mini",
            "--base-url",
            server.openai_base_url,
            "-n",
            "40",
            "--num-instructions",
            "30",
            "--filter",
            "llm-judge",
            "--judge-threshold",
            "4",
            "--out",
            str(out),
            "--json",
            *extra,
        ],
        env={"OPENAI_API_KEY": TEST_KEY},
    )


def test_the_judge_dispatcher_has_its_own_limits(
    tasks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    real = context_mod.Dispatcher

    def spy(eng: Any, *, config: Any, stage: str, **kw: Any) -> Any:
        seen[stage] = config
        return real(eng, config=config, stage=stage, **kw)

    monkeypatch.setattr(context_mod, "Dispatcher", spy)
    with WireServer() as server:
        server.responder = judge_responder.respond
        r = _generate(
            tasks,
            server,
            tmp_path / "out",
            "--concurrency",
            "7",
            "--rpm",
            "3000",
            "--judge-concurrency",
            "2",
            "--judge-rpm",
            "600",
            "--judge-tpm",
            "90000",
        )
        assert r.exit_code == 0, r.output
        judged = [c for c in server.requests if judge_responder.is_judge(c)]
    assert judged
    judge, run = seen["requests:judge"], seen["requests"]
    assert (judge.concurrency, judge.rpm, judge.tpm) == (2, 600, 90000)
    assert (run.concurrency, run.rpm, run.tpm) == (7, 3000, None)
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    by = {tuple(e["roles"]): e for e in report["requests"]["by_engine"]}
    assert by[("judge",)]["requests_sent"] == len(judged)  # every rating went through it


def test_a_judged_run_without_a_cache_pays_for_no_request_twice(
    tasks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp(*a: Any, **kw: Any) -> str:
        made.append(real_mkdtemp(*a, **kw))
        return made[-1]

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    with WireServer() as server:
        server.responder = judge_responder.respond
        r = _generate(tasks, server, tmp_path / "nocache", "--no-cache")
        assert r.exit_code == 0, r.output
        report = json.loads((tmp_path / "nocache" / "run.json").read_text())
        assert report["judge"]["method_runs"] >= 2  # the judge dropped rows: more were asked for
        method = [c.key for c in server.requests if not judge_responder.is_judge(c)]
        twice = [k for k, n in Counter(method).items() if n > 1]
        assert method and not twice  # each distinct method request reached the server once
        assert len(InstructionDataset.load(tmp_path / "nocache")) == 40
        # the same run with the cache in --out sends exactly as many method requests
        before = len(server.requests)
        r2 = _generate(tasks, server, tmp_path / "cached")
        assert r2.exit_code == 0, r2.output
        cached = [c for c in server.requests[before:] if not judge_responder.is_judge(c)]
        assert len(cached) == len(method)
    # the private cache lived in a temporary folder, removed at the end; none in --out
    private = [p for p in made if "instructgen-judged-" in p]
    assert len(private) == 1 and not Path(private[0]).exists()
    assert not (tmp_path / "nocache" / "cache.sqlite3").exists()

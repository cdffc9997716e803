"""Batch mode: requests through the OpenAI Batch API of a local wire server (files, batches,
states, output and error files, cancel), crash-safe resume, retries, prices, the CLI."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batch_server import BatchWireServer
from click.testing import CliRunner
from conftest import SHARED, TEST_KEY
from selfinstruct_responder import respond
from wire_server import WireServer

from instructgen.batching import BatchConfig, supports_batch
from instructgen.cache import Cache
from instructgen.cli import cli
from instructgen.dispatch import DispatchConfig, Dispatcher
from instructgen.engines import Completion, Engine, Request, create_engine
from instructgen.errors import BadRequestError

FAST = BatchConfig(idle=0.05, poll_interval=0.02, poll_max=0.05)


@pytest.fixture
def server() -> Iterator[BatchWireServer]:
    with BatchWireServer() as s:
        yield s


def engine(server: WireServer, name: str = "openai") -> Any:
    return create_engine(name, api_key=TEST_KEY, base_url=server.openai_base_url)


async def run(
    server: WireServer,
    requests: list[Request],
    cache: Cache | None,
    *,
    batch: BatchConfig | None = FAST,
    name: str = "openai",
    events: list[Any] | None = None,
) -> tuple[list[Completion | BaseException], Dispatcher]:
    cfg = DispatchConfig(batch=batch, backoff_base=0.01)
    progress = events.append if events is not None else None
    async with Dispatcher(engine(server, name), config=cfg, cache=cache, progress=progress) as d:
        out = await asyncio.gather(
            *(d.complete(r, batchable=True) for r in requests), return_exceptions=True
        )
    return list(out), d


def reqs(n: int, tag: str = "q") -> list[Request]:
    return [Request.chat(f"{tag} number {i}", max_tokens=20) for i in range(n)]


@pytest.mark.parametrize("name", ["openai", "openai-completions"])
def test_batchable_requests_go_through_one_batch_at_half_price(
    server: BatchWireServer, tmp_path: Path, name: str
) -> None:
    events: list[Any] = []
    with Cache(tmp_path / "c.sqlite3") as cache:
        out, d = asyncio.run(run(server, reqs(7), cache, name=name, events=events))
        assert all(isinstance(c, Completion) and c.text.startswith("Answer") for c in out)
        assert server.batches_created == 1
        assert d.stats.sent == 0  # nothing online
        (batch,) = server.batches.values()
        assert batch["endpoint"] == (
            "/v1/chat/completions" if name == "openai" else "/v1/completions"
        )
        assert batch["status"] == "completed"
        # the states as progress showed them
        states = [e.message for e in events if e.stage == "batch"]
        assert any("in_progress" in m for m in states) and "completed 7/7" in states[-1]
        # cost at the batch column: half the online price
        price = d.engine.price()
        online = price.cost(d.stats.usage)
        assert d.stats.cost == pytest.approx(online * 0.5)
        assert d.stats.to_dict()["batch"]["cost_usd"] == pytest.approx(online * 0.5, abs=1e-6)
        # the same cache serves an online run: nothing is sent again
        calls = len(server.calls)
        out2, d2 = asyncio.run(run(server, reqs(7), cache, name=name, batch=None))
        assert [c.text for c in out2] == [c.text for c in out]  # type: ignore[union-attr]
        assert len(server.calls) == calls and d2.stats.cached == 7
        assert cache.open_batches() == []


def test_engine_contract_submit_poll_fetch_cancel(server: BatchWireServer) -> None:
    eng = engine(server)
    assert supports_batch(eng)

    async def go() -> None:
        items = [("a", Request.chat("one")), ("b", Request.chat("two"))]
        bid = await eng.abatch_submit(items)
        first = await eng.abatch_poll(bid)
        assert first.state == "in_progress" and first.total == 2
        while not (await eng.abatch_poll(bid)).finished:
            pass
        results = await eng.abatch_fetch(bid)
        assert set(results) == {"a", "b"} and all(
            isinstance(r, Completion) for r in results.values()
        )
        server.hold = True
        bid2 = await eng.abatch_submit([("c", Request.chat("three"))])
        await eng.abatch_poll(bid2)
        assert (await eng.abatch_cancel(bid2)).state == "cancelling"
        assert (await eng.abatch_poll(bid2)).state == "cancelled"
        assert await eng.abatch_fetch(bid2) == {}
        await eng.aclose()

    asyncio.run(go())
    # the upload was multipart with the lines the SDK wrote
    uploaded = [f for f in server.files.values() if f.get("filename")]
    line = json.loads(uploaded[0]["text"].splitlines()[0])
    assert line["method"] == "POST" and line["url"] == "/v1/chat/completions"
    assert line["body"]["messages"][0]["content"] == "one"


def test_failed_lines_are_retried_in_a_new_batch(server: BatchWireServer, tmp_path: Path) -> None:
    requests = reqs(5)
    with Cache(tmp_path / "c.sqlite3") as cache:
        probe = Dispatcher(engine(server), cache=cache)
        server.fail_lines = {probe.key(requests[1]), probe.key(requests[3])}
        out, d = asyncio.run(run(server, requests, cache))
    assert all(isinstance(c, Completion) for c in out)
    assert server.batches_created == 2
    second = list(server.batches.values())[1]
    assert second["request_counts"]["total"] == 2  # only the failed lines again
    assert d.stats.batch.failed == 2 and d.stats.batch.retried == 2
    assert server.paid_twice() == []


def test_failed_lines_go_online_with_the_online_fallback(
    server: BatchWireServer, tmp_path: Path
) -> None:
    requests = reqs(4)
    cfg = BatchConfig(idle=0.05, poll_interval=0.02, fallback="online")
    with Cache(tmp_path / "c.sqlite3") as cache:
        probe = Dispatcher(engine(server), cache=cache)
        server.fail_lines = {probe.key(requests[2])}
        out, d = asyncio.run(run(server, requests, cache, batch=cfg))
    assert all(isinstance(c, Completion) for c in out)
    assert server.batches_created == 1
    assert d.stats.sent == 1  # the failed line, online
    assert d.stats.batch.online_fallback == 1


def test_a_bad_request_line_is_a_typed_error_not_retried(
    server: BatchWireServer, tmp_path: Path
) -> None:
    server.inject("400", times=1, match=lambda c: "number 0" in c.prompt)
    out, _ = asyncio.run(run(server, reqs(2), None))
    assert isinstance(out[0], BadRequestError)
    assert isinstance(out[1], Completion)
    assert server.batches_created == 1


def test_poll_errors_are_retried(server: BatchWireServer) -> None:
    server.poll_errors = 2
    out, _ = asyncio.run(run(server, reqs(2), None))
    assert all(isinstance(c, Completion) for c in out)


def test_a_rerun_resumes_the_same_batch_and_never_submits_it_again(
    server: BatchWireServer, tmp_path: Path
) -> None:
    requests = reqs(6)
    server.hold = True  # the batch stays in progress: the first run gives up waiting

    async def interrupted() -> None:
        with Cache(tmp_path / "c.sqlite3") as cache:
            task = asyncio.ensure_future(run(server, requests, cache))
            while not server.polls:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert len(cache.open_batches()) == 1  # committed before waiting

    asyncio.run(interrupted())
    assert server.batches_created == 1
    server.hold = False
    with Cache(tmp_path / "c.sqlite3") as cache:
        out, d = asyncio.run(run(server, requests, cache))
        assert cache.open_batches() == []
    assert all(isinstance(c, Completion) for c in out)
    assert server.batches_created == 1  # resumed, not submitted again
    assert d.stats.batch.resumed == 1 and d.stats.batch.batches == 0
    assert server.paid_twice() == []


def test_an_engine_without_batches_runs_online(
    server: BatchWireServer, caplog: pytest.LogCaptureFixture
) -> None:
    class Plain(Engine):
        name = "plain"
        needs_key = False

        async def acomplete(self, request: Request) -> Completion:
            return Completion(("ok",))

    assert not supports_batch(Plain())
    with caplog.at_level(logging.WARNING, logger="instructgen.dispatch"):
        d = Dispatcher(Plain(), config=DispatchConfig(batch=True))
    assert d.batcher is None and "no batch API" in caplog.text
    assert asyncio.run(d.complete(Request.chat("x"), batchable=True)).text == "ok"


def test_batch_prices_default_to_half_and_follow_the_table() -> None:
    from instructgen.batching import batch_price
    from instructgen.engines import Price

    assert batch_price(Price(1.0, 4.0)) == Price(0.5, 2.0)
    assert batch_price(Price(1.0, 4.0, batch_input=0.9, batch_output=3.0)) == Price(0.9, 3.0)
    assert batch_price(None) is None


# -- the CLI --------------------------------------------------------------------------------------


def _generate(url: str, out: Path, *extra: str) -> dict[str, Any]:
    r = CliRunner().invoke(
        cli,
        [
            "generate",
            str(out.parent / "seed_tasks.jsonl"),
            "--engine",
            "openai",
            "--base-url",
            url,
            "--out",
            str(out),
            "-n",
            "15",
            "--num-instructions",
            "15",
            "--json",
            *extra,
        ],
    )
    assert r.exit_code == 0, r.output
    return json.loads((out / "run.json").read_text())


def test_generate_batch_costs_at_most_60_percent_of_online(
    server: BatchWireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tmp_path / "seed_tasks.jsonl")
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    server.responder = respond
    with WireServer() as online_server:
        online_server.responder = respond
        online = _generate(online_server.openai_base_url, tmp_path / "online")
    batched = _generate(
        server.openai_base_url, tmp_path / "batched", "--batch", "--batch-poll", "0.02"
    )
    assert server.batches_created >= 2  # classification, then instances
    req = batched["requests"]
    assert req["batch"]["requests_completed"] == 30
    assert req["requests_sent"] == online["requests"]["requests_sent"] - 30  # bootstrap only
    ratio = req["cost_usd"] / online["requests"]["cost_usd"]
    assert ratio <= 0.6, ratio
    # same answers, same dataset
    online_rows = (tmp_path / "online" / "run.json").read_text()
    assert json.loads(online_rows)["examples"] == batched["examples"]


KILL_SCRIPT = """
import sys
from instructgen.cli import main
main(sys.argv[1:])
"""


def test_kill_9_while_a_batch_runs_then_rerun_submits_nothing_twice(tmp_path: Path) -> None:
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tmp_path / "seed_tasks.jsonl")
    env = {**os.environ, "OPENAI_API_KEY": TEST_KEY}
    with BatchWireServer() as server:
        server.responder = respond
        server.hold = True
        out = tmp_path / "killed"
        cmd = [
            sys.executable,
            "-c",
            KILL_SCRIPT,
            "generate",
            str(tmp_path / "seed_tasks.jsonl"),
            "--engine",
            "openai",
            "--base-url",
            server.openai_base_url,
            "--out",
            str(out),
            "-n",
            "12",
            "--num-instructions",
            "12",
            "--batch",
            "--batch-poll",
            "0.05",
        ]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not any(n >= 2 for n in server.polls.values()) and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert server.batches_created == 1  # the classification batch, in progress
        assert not (out / "metadata.json").exists()  # it really died mid-run
        online_before = dict(server.successes)
        server.hold = False
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        report = json.loads((out / "run.json").read_text())
        assert report["requests"]["batch"]["batches_resumed"] == 1
        # the classification batch was followed again, not submitted again: one more batch
        # (the instances) in all
        assert server.batches_created == 2
        assert server.paid_twice() == [], server.paid_twice()
        assert all(n == 1 for n in server.batch_lines.values())
        assert len(online_before) > 0


def test_a_batch_created_just_before_a_crash_is_found_by_its_token(
    server: BatchWireServer, tmp_path: Path
) -> None:
    """The crash window between the provider creating a batch and its id being recorded: the
    submission's marker is in the database first, and the rerun finds the batch by token."""
    from instructgen.batching import SUBMITTING, TOKEN_FIELD

    requests = reqs(3)
    with Cache(tmp_path / "c.sqlite3") as cache:
        probe = Dispatcher(engine(server), cache=cache)
        keys = [probe.key(r) for r in requests]
        cache.batch_add(SUBMITTING + "tok123", keys)  # what _submit records first

        async def created_then_killed() -> None:
            eng = engine(server)
            await eng.abatch_submit(
                list(zip(keys, requests, strict=True)), metadata={TOKEN_FIELD: "tok123"}
            )
            await eng.aclose()

        asyncio.run(created_then_killed())
        assert server.batches_created == 1
        out, d = asyncio.run(run(server, requests, cache))
        assert all(isinstance(c, Completion) for c in out)
        assert server.batches_created == 1 and d.stats.batch.resumed == 1
        assert cache.open_batches() == []
        # a marker whose batch never reached the provider is submitted afresh
        more = reqs(2, tag="fresh")
        cache.batch_add(SUBMITTING + "lost", [probe.key(r) for r in more])
        out, d = asyncio.run(run(server, more, cache))
        assert all(isinstance(c, Completion) for c in out)
        assert server.batches_created == 2 and d.stats.batch.batches == 1
        assert cache.open_batches() == []
    assert server.paid_twice() == []


def test_from_dir_question_answer_requests_go_through_batches(
    server: BatchWireServer, tmp_path: Path
) -> None:
    """Document Q/A in batch mode: first requests in one batch, follow-ups (for chunks that
    came back short) in the next; the dataset equals the online run's."""
    from wire_server import qa_responder

    from instructgen import InstructionDataset

    docs = tmp_path / "docs"
    docs.mkdir()
    words = "solar panels convert sunlight into electricity through photovoltaic cells " * 30
    for i in range(3):
        paras = [f"Section {j} of note {i}. {words}" for j in range(2)]
        (docs / f"note-{i}.txt").write_text("\n\n".join(paras), encoding="utf-8")
    server.responder = qa_responder("short", respond)  # one pair short: a follow-up each

    def build(url: str, out: Path, batch: Any) -> InstructionDataset:
        return InstructionDataset.generate_dataset_from_dir(
            docs,
            create_engine("openai", api_key=TEST_KEY, base_url=url),
            chunk_size=2400,
            num_samples_per_chunk=3,
            out=out,
            workers=0,
            batch=batch,
        )

    batched = build(server.openai_base_url, tmp_path / "b", FAST)
    with WireServer() as online_server:
        online_server.responder = qa_responder("short", respond)
        online = build(online_server.openai_base_url, tmp_path / "o", False)
    chunks = len(batched) // 3
    assert chunks >= 6 and len(batched) == len(online) == chunks * 3
    assert sorted(r["instruction"] for r in batched) == sorted(r["instruction"] for r in online)
    requests = batched.run_report["requests"]
    assert requests["requests_sent"] == 0 and requests["batch"]["requests_completed"] == 2 * chunks
    assert server.batches_created == 2  # the first requests, then the follow-ups
    assert requests["cost_usd"] == pytest.approx(
        online.run_report["requests"]["cost_usd"] * 0.5, rel=1e-3
    )


def test_a_cancelled_batch_is_sent_again_for_the_lines_it_did_not_answer(
    server: BatchWireServer, tmp_path: Path
) -> None:
    server.hold = True

    async def go() -> list[Any]:
        cfg = DispatchConfig(batch=FAST, backoff_base=0.01)
        async with Dispatcher(engine(server), config=cfg, cache=None) as d:
            futs = [asyncio.ensure_future(d.complete(r, batchable=True)) for r in reqs(3)]
            while not server.polls:
                await asyncio.sleep(0.01)
            await d.batcher.acancel()
            server.hold = False
            return list(await asyncio.gather(*futs))

    out = asyncio.run(go())
    assert all(isinstance(c, Completion) for c in out)
    first, second = server.batches.values()
    assert first["status"] == "cancelled" and second["status"] == "completed"
    assert second["request_counts"]["total"] == 3


def test_dry_run_estimates_batch_requests_at_the_batch_price(tmp_path: Path) -> None:
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tmp_path / "t.jsonl")
    costs = []
    for extra in ([], ["--batch"]):
        r = CliRunner().invoke(
            cli,
            [
                "generate",
                str(tmp_path / "t.jsonl"),
                "--engine",
                "openai",
                "--dry-run",
                "--json",
                *extra,
            ],
        )
        assert r.exit_code == 0, r.output
        costs.append(json.loads(r.stdout)["max_cost_usd"])
    assert 0.5 * costs[0] < costs[1] < costs[0]

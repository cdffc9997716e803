"""A second engine for the answers (--response-engine/--response-model): the instance requests
go to it and nothing else does, run.json and the summary give each engine's requests, tokens and
cost, the dry run prices both, each engine has its own limits and one budget covers both."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SHARED, TEST_KEY
from selfinstruct_responder import respond
from wire_server import WireCall, WireServer

import instructgen
from instructgen.cli import cli
from instructgen.dispatch import DispatchConfig
from instructgen.errors import BudgetExceededError
from instructgen.method import RunSize
from instructgen.methods.context import DispatchContext

MODEL_A, MODEL_B = "gpt-4o-mini", "gpt-4o"


@pytest.fixture
def tasks(tmp_path: Path) -> Path:
    dst = tmp_path / "seed_tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", dst)
    return dst


def _stage(call: WireCall) -> str:
    p = call.prompt
    if "Is it classification?" in p:
        return "classify"
    if "Come up with examples for the following tasks" in p or "generate an input" in p:
        return "instances"
    return "bootstrap"


def test_instances_go_to_the_response_model_only_and_the_cost_is_split(
    tasks: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = [
        "generate",
        str(tasks),
        "-n",
        "300",
        "--num-instructions",
        "400",
        "--engine",
        "openai",
        "--model",
        MODEL_A,
        "--response-engine",
        "openai",
        "--response-model",
        MODEL_B,
        "--response-concurrency",
        "4",
        "--out",
        str(out),
    ]
    with WireServer() as server:
        server.responder = respond
        r = CliRunner().invoke(
            cli, [*args, "--base-url", server.openai_base_url], env={"OPENAI_API_KEY": TEST_KEY}
        )
        assert r.exit_code == 0, r.output
        seen = Counter((c.body["model"], _stage(c)) for c in server.requests)
        assert {m for m, s in seen if s == "instances"} == {MODEL_B}
        assert {m for m, s in seen if s in ("bootstrap", "classify")} == {MODEL_A}
        assert seen[(MODEL_A, "classify")] == seen[(MODEL_B, "instances")] >= 400
        report = json.loads((out / "run.json").read_text())
        req = report["requests"]
        by = {e["model"]: e for e in req["by_engine"]}
        assert by[MODEL_A]["roles"] == ["instructions"] and by[MODEL_B]["roles"] == ["answers"]
        assert by[MODEL_B]["requests_sent"] == seen[(MODEL_B, "instances")]
        assert by[MODEL_A]["requests_sent"] == sum(n for (m, _), n in seen.items() if m == MODEL_A)
        assert by[MODEL_A]["cost_usd"] > 0 and by[MODEL_B]["cost_usd"] > 0
        assert req["cost_usd"] == pytest.approx(by[MODEL_A]["cost_usd"] + by[MODEL_B]["cost_usd"])
        assert req["requests_sent"] == len(server.requests)
        assert report["engines"] == {
            "instructions": f"openai:{MODEL_A}",
            "answers": f"openai:{MODEL_B}",
        }
        assert "by engine: openai:gpt-4o-mini (instructions)" in r.output
        assert "openai:gpt-4o (answers)" in r.output
        # the cache keeps the engines apart: a rerun sends nothing; the same run with the
        # answers on the run's model asks the instance requests again (a new key), nothing else
        sent = len(server.requests)
        r2 = CliRunner().invoke(
            cli, [*args, "--base-url", server.openai_base_url], env={"OPENAI_API_KEY": TEST_KEY}
        )
        assert r2.exit_code == 0, r2.output
        assert len(server.requests) == sent
        r3 = CliRunner().invoke(
            cli,
            [
                "generate",
                str(tasks),
                "-n",
                "300",
                "--num-instructions",
                "400",
                "--engine",
                "openai",
                "--model",
                MODEL_A,
                "--out",
                str(out),
                "--base-url",
                server.openai_base_url,
            ],
            env={"OPENAI_API_KEY": TEST_KEY},
        )
        assert r3.exit_code == 0, r3.output
        again = Counter((c.body["model"], _stage(c)) for c in server.requests[sent:])
        assert set(again) == {(MODEL_A, "instances")}


def test_the_dry_run_estimates_both_engines(tasks: Path) -> None:
    r = CliRunner().invoke(
        cli,
        [
            "generate",
            str(tasks),
            "-n",
            "100",
            "--num-instructions",
            "100",
            "--engine",
            "openai",
            "--response-model",
            MODEL_B,
            "--dry-run",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    engines = out["engines"]
    assert engines[f"openai:{MODEL_B}"]["roles"] == ["answers"]
    assert engines[f"openai:{MODEL_B}"]["expected_requests"] == 100
    assert set(engines[f"openai:{MODEL_A}"]["roles"]) == {"instructions"}
    assert all(e["expected_cost_usd"] > 0 for e in engines.values())
    assert out["expected_cost_usd"] == pytest.approx(
        sum(e["expected_cost_usd"] for e in engines.values()), rel=1e-3
    )


def test_a_method_that_writes_outputs_with_its_instructions_refuses_it(tasks: Path) -> None:
    r = CliRunner().invoke(
        cli,
        [
            "generate",
            str(tasks),
            "--method",
            "alpaca",
            "--engine",
            "openai",
            "--response-model",
            MODEL_B,
            "--out",
            str(tasks.parent / "o"),
        ],
        env={"OPENAI_API_KEY": TEST_KEY},
    )
    assert r.exit_code == 2
    assert "takes no response engine" in r.output
    assert "response engine" in r.output and "same request" in r.output
    m = CliRunner().invoke(cli, ["methods"])
    assert "no answers role: Alpaca writes" in m.output


def test_each_engine_has_its_own_limits_and_one_budget(wire_server: WireServer) -> None:
    a = instructgen.engine(
        "openai", api_key=TEST_KEY, base_url=wire_server.openai_base_url, model=MODEL_A
    )
    b = instructgen.engine(
        "openai", api_key=TEST_KEY, base_url=wire_server.openai_base_url, model=MODEL_B
    )
    own = DispatchConfig(concurrency=2, rpm=600, max_cost=0.02)

    async def go() -> tuple[int, int, float]:
        ctx = DispatchContext(
            {"instructions": a, "answers": b},
            size=RunSize(),
            config=DispatchConfig(concurrency=8, max_cost=0.02),
            role_configs={"answers": own},
        )
        async with ctx:
            d_a, d_b = ctx.dispatcher("instructions"), ctx.dispatcher("answers")
            assert d_b.config.concurrency == 2 and d_b.config.rpm == 600
            assert d_a.config.concurrency == 8 and d_a.config.rpm is None
            req = instructgen.Request.chat("word " * 50, max_tokens=200)
            with pytest.raises(BudgetExceededError):
                for i in range(200):  # alternate: the budget counts both engines' spending
                    await ctx.dispatcher("answers" if i % 2 else "instructions").complete(
                        req, sample=i
                    )
            return d_a.stats.completed, d_b.stats.completed, d_a.spent(reserved=False)

    done_a, done_b, spent = asyncio.run(go())
    assert done_a >= 1 and done_b >= 1
    assert spent <= 0.02

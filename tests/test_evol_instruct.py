"""evol-instruct end to end through the core's run_method, the real OpenAI SDK and a local
wire-format server whose replies look like a real model's (tests/evol_responder.py): exact
counts, evolved instructions only, every elimination reason counted, the same dataset at any
concurrency and from the cache, failed requests counted, the dry-run estimate."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import instructgen_evol
import pytest
from batch_server import BatchWireServer
from click.testing import CliRunner
from conftest import SHARED, TEST_KEY, registered_as_installed
from evol_responder import respond
from instructgen_evol import elimination
from instructgen_evol.method import EvolInstruct
from kill_resume import kill_then_resume
from wire_server import WireServer

import instructgen
from instructgen import InstructionDataset, RunSize
from instructgen.cli import cli
from instructgen.dispatch import DispatchConfig
from instructgen.runs import RunResult, load_method_input, run_method

SEED = SHARED / "data" / "seed_tasks.jsonl"


@pytest.fixture(autouse=True)
def _registered() -> Any:
    yield from registered_as_installed("methods", "evol-instruct", instructgen_evol, "evol")


@pytest.fixture
def tasks(tmp_path: Path) -> Path:
    dst = tmp_path / "seed_tasks.jsonl"
    shutil.copy(SEED, dst)
    return dst


def run(
    server: WireServer,
    source: Path,
    cache: Path | bool,
    *,
    n: int,
    concurrency: int = 16,
    **options: Any,
) -> RunResult:
    engine = instructgen.engine("openai", api_key=TEST_KEY, base_url=server.openai_base_url)
    return asyncio.run(
        run_method(
            "evol-instruct",
            source,
            engine,
            size=RunSize(n=n, num_instructions=n, seed=7),
            method_options=options,
            cache=cache,
            config=DispatchConfig(concurrency=concurrency, max_attempts=2, backoff_base=0.01),
        )
    )


def test_exact_count_evolved_only_every_elimination_counted(
    wire_server: WireServer, tasks: Path, tmp_path: Path
) -> None:
    wire_server.responder = respond
    result = run(wire_server, tasks, tmp_path / "cache.db", n=300, rounds="3")
    rows, report = result.rows, result.report
    assert len(rows) == 300
    seeds = {s.text for s in instructgen_evol.seeds.seeds_of(load_method_input(tasks))}
    seeds |= {t.instruction for t in load_method_input(tasks).tasks}
    assert not any(r["instruction"] in seeds for r in rows)
    assert len({r["instruction"] for r in rows}) == 300
    assert all(r["target"].strip() for r in rows)
    # The round and the operation travel in `source`; rounds run in order.
    parts = [r["source"].split(":") for r in rows]
    assert all(p[0] == "evol-instruct" and p[1].startswith("round-") for p in parts)
    rounds = [int(p[1].removeprefix("round-")) for p in parts]
    assert rounds == sorted(rounds) and rounds[0] == 1 and rounds[-1] >= 2
    ops = Counter(p[2] for p in parts)
    assert set(ops) == set(instructgen_evol.prompts.OPERATIONS)
    # Nothing the elimination step forbids is in the dataset.
    for r in rows:
        assert not elimination.copies_template(r["instruction"])
        assert elimination.answer_elimination(r["target"]) is None
        assert not r["instruction"].startswith(("Here is", '"', "```", "**", "<think>"))
        assert "This rewritten prompt" not in r["instruction"]
    ev = report["eliminations"]
    assert set(ev) == set(elimination.REASONS)
    assert all(ev[reason] > 0 for reason in elimination.REASONS), ev
    assert report["unusable_evolutions"]["no prompt in the evolution reply"] > 0
    assert report["examples"] == 300
    kept = sum(int(v) for v in report["kept_by_round"].values())
    assert kept == 300
    # Every recorded evolution is a row, an elimination, an unusable reply or a failure.
    assert report["evolutions_recorded"] == (
        300
        + sum(ev.values())
        + sum(report["unusable_evolutions"].values())
        + report["failed_evolutions"]
    )
    assert report["requests"]["requests_failed"] == 0
    sent = report["requests_by_role"]  # of the recorded evolutions
    assert sent["instructions"] == report["evolutions_recorded"]
    assert sent["answers"] == sent["judge"] <= sent["instructions"]


def test_same_dataset_at_any_concurrency_and_from_the_cache(
    wire_server: WireServer, tasks: Path, tmp_path: Path
) -> None:
    wire_server.responder = respond
    one = run(wire_server, tasks, tmp_path / "a.db", n=60, concurrency=1, rounds="2", window="8")
    many = run(wire_server, tasks, tmp_path / "b.db", n=60, concurrency=32, rounds="2")
    assert one.rows == many.rows
    assert one.report["eliminations"] == many.report["eliminations"]
    wire_server.reset_counts()
    again = run(wire_server, tasks, tmp_path / "b.db", n=60, concurrency=32, rounds="2")
    assert again.rows == many.rows
    assert len(wire_server.requests) == 0  # all from the cache
    assert again.report["requests"]["requests_cached"] > 0


def test_a_parent_whose_evolution_failed_evolves_again_next_round(
    wire_server: WireServer, tmp_path: Path
) -> None:
    """Two seeds, four rounds: an eliminated evolution leaves its parent in the pool, and the
    next round evolves that parent with a request of its own (never the cached failure)."""
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(
        '{"instruction": "Explain photosynthesis to a child."}\n'
        '{"instruction": "Summarize the causes of World War I."}\n'
    )
    calls: list[str] = []

    def responder(call: Any) -> str:
        calls.append(call.prompt)
        # Round 1 of the first seed copies the template; everything else evolves.
        evolving = "#Rewritten Prompt#:" in call.prompt or "#Created Prompt#:" in call.prompt
        if evolving and "Explain photosynthesis to a child.\n\n#" in call.prompt and len(calls) < 4:
            return "Rewrite the given prompt for a teenager."
        return respond(call)

    wire_server.responder = responder
    result = run(wire_server, seeds, tmp_path / "c.db", n=8, concurrency=1, rounds="4")
    report = result.report
    assert report["eliminations"][elimination.COPIED_TEMPLATE] >= 1
    # The first seed's chain still reached round 2 from the original instruction.
    evolutions = [p for p in calls if "Prompt#:" in p]
    photosynthesis = [p for p in evolutions if "Explain photosynthesis to a child.\n\n#" in p]
    assert len(photosynthesis) >= 2


def test_failed_requests_return_the_parent_and_are_counted(
    wire_server: WireServer, tasks: Path, tmp_path: Path
) -> None:
    wire_server.responder = respond
    wire_server.inject("400", times=3)
    result = run(wire_server, tasks, tmp_path / "d.db", n=20, rounds="2")
    assert len(result.rows) == 20
    assert result.report["failed_evolutions"] >= 1


def test_shortfall_when_the_rounds_cannot_give_enough(
    wire_server: WireServer, tmp_path: Path
) -> None:
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"instruction": "Name three primes."}\n')
    wire_server.responder = respond
    result = run(wire_server, seeds, tmp_path / "e.db", n=10, rounds="2")
    assert len(result.rows) <= 2
    assert "2 rounds over 1 seed instructions" in result.report["shortfall_reason"]


def test_estimate_counts_the_three_stages(tasks: Path) -> None:
    method = EvolInstruct({"rounds": "3"})
    source = load_method_input(tasks)
    stages = {e.stage: e for e in method.estimate(source, RunSize(n=300, seed=7), chat=True)}
    assert set(stages) == {"evolve", "judge", "answer"}
    assert stages["evolve"].expected == 375  # 300 rows at 0.8 kept per evolution
    assert stages["evolve"].upper == 3 * 175
    assert stages["judge"].batchable and stages["answer"].batchable
    assert not stages["evolve"].batchable
    assert stages["answer"].role == "answers" and stages["judge"].role == "judge"
    assert "#Rewritten Prompt#" in stages["evolve"].request.as_prompt() or (
        "#Created Prompt#" in stages["evolve"].request.as_prompt()
    )


# -- through the command line -------------------------------------------------------------------


def cli_generate(url: str, tasks: Path, out: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    r = CliRunner().invoke(
        cli,
        [
            "generate",
            str(tasks),
            "--engine",
            "openai",
            "--base-url",
            url,
            "--out",
            str(out),
            "--method",
            "evol-instruct",
            "--json",
            *extra,
        ],
        env={"OPENAI_API_KEY": TEST_KEY},
    )
    payload = json.loads(r.stdout) if r.stdout.strip().startswith("{") else {}
    return r.exit_code, payload, r.stderr + r.stdout


def test_generate_300_rows_with_eliminations_by_reason_in_run_json(
    wire_server: WireServer, tasks: Path, tmp_path: Path
) -> None:
    wire_server.responder = respond
    out = tmp_path / "out"
    code, payload, err = cli_generate(
        wire_server.openai_base_url, tasks, out, "-m", "rounds", "3", "-n", "300"
    )
    assert code == 0, err
    assert payload["examples"] == 300 and payload["method"] == "evol-instruct"
    rows = InstructionDataset.load(out)
    assert len(rows) == 300
    seeds = {t.instruction for t in load_method_input(tasks).tasks}
    assert not any(r["instruction"] in seeds for r in rows)
    report = json.loads((out / "run.json").read_text())
    assert report["method_options"]["rounds"] == 3
    assert all(report["eliminations"][reason] > 0 for reason in elimination.REASONS)
    assert {r["source"].split(":")[2] for r in rows} == set(instructgen_evol.prompts.OPERATIONS)


def test_unknown_option_exits_2_with_the_list(tasks: Path, tmp_path: Path) -> None:
    code, _, err = cli_generate("http://127.0.0.1:9", tasks, tmp_path / "o", "-m", "round", "3")
    assert code == 2
    assert "rounds" in err and "operations" in err and "Traceback" not in err
    code, _, err = cli_generate("http://127.0.0.1:9", tasks, tmp_path / "o", "-m", "rounds", "0")
    assert code == 2 and "rounds must be at least 1" in err


def test_dry_run_estimates_requests_and_cost_and_sends_nothing(
    wire_server: WireServer, tasks: Path, tmp_path: Path
) -> None:
    code, payload, err = cli_generate(
        wire_server.openai_base_url,
        tasks,
        tmp_path / "o",
        "-m",
        "rounds",
        "3",
        "-n",
        "300",
        "--dry-run",
    )
    assert code == 0, err
    assert payload["requests"] == {"evolve": 375, "judge": 337.5, "answer": 337.5, "total": 1050}
    assert 0 < payload["expected_cost_usd"] < payload["max_cost_usd"]
    assert len(wire_server.requests) == 0
    assert not (tmp_path / "o").exists()


def test_batch_mode_sends_answers_and_verdicts_through_batches(tasks: Path, tmp_path: Path) -> None:
    with BatchWireServer() as server:
        server.responder = respond
        code, payload, err = cli_generate(
            server.openai_base_url,
            tasks,
            tmp_path / "o",
            "-n",
            "100",
            "-m",
            "rounds",
            "2",
            "-m",
            "window",
            "175",
            "--batch",
            "--batch-poll",
            "0.02",
        )
        assert code == 0, err
    report = json.loads((tmp_path / "o" / "run.json").read_text())
    req = payload["requests"]
    by_role = report["requests_by_role"]
    assert payload["examples"] == 100
    # Evolutions online (the next round is built from them); every answer and verdict of a
    # recorded evolution in a batch; a window of the whole pool makes that a few batches.
    assert req["requests_sent"] - req["requests_failed"] >= by_role["instructions"]
    assert req["batch"]["requests_completed"] >= by_role["answers"] + by_role["judge"]
    assert 1 <= server.batches_created <= 4


def _entry_point_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a separate process that loads the plugin through its entry point:
    when the installed metadata predates the `evol` entry point, a distribution on PYTHONPATH
    declares it (as `pip install -e .` does)."""
    env = {**os.environ, "OPENAI_API_KEY": TEST_KEY}
    from importlib_metadata import entry_points

    if not any(ep.name == "evol" for ep in entry_points(group="instructgen")):
        dist = tmp_path / "ep" / "instructgen_evol_entrypoint-0.0.0.dist-info"
        dist.mkdir(parents=True)
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: x-evol-ep\nVersion: 0\n")
        (dist / "entry_points.txt").write_text("[instructgen]\nevol = instructgen_evol\n")
        env["PYTHONPATH"] = os.pathsep.join(
            [*filter(None, [env.get("PYTHONPATH")]), str(dist.parent)]
        )
    return env


def test_kill_9_at_random_moments_then_rerun_equals_uninterrupted(
    tasks: Path, tmp_path: Path
) -> None:
    args = [
        "generate",
        str(tasks),
        "--engine",
        "openai",
        "--method",
        "evol-instruct",
        "-m",
        "rounds",
        "3",
        "-n",
        "120",
        "--concurrency",
        "8",
        "--format",
        "jsonl",
    ]
    env = _entry_point_env(tmp_path)
    got = kill_then_resume(args, tmp_path, env, respond, kills=3, latency=0.03)
    # only what was in flight at a kill (at most --concurrency each time) is paid twice
    assert len(got.paid_twice) <= 8 * len(got.moments), (got.moments, got.paid_twice)
    assert got.resumed == got.reference, got.moments

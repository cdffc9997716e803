"""The llm-judge filter: replies read in real styles, exact counts with every kept row at or
above the threshold, rating requests equal to rows rated (plus the re-asks of replies without a
score), a rerun sending nothing, batch mode, and `instructgen judge` on a saved dataset giving
the same scores from the cache."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import judge_responder
import pytest
from batch_server import BatchWireServer
from click.testing import CliRunner
from conftest import SHARED, TEST_KEY, registered_as_installed
from wire_server import WireServer

import instructgen
from instructgen import InstructionDataset
from instructgen.cli import cli

instructgen_judge = pytest.importorskip("instructgen_judge")
from instructgen_judge import LLMJudge, read_score  # noqa: E402


@pytest.fixture(autouse=True)
def _registered() -> Any:
    yield from registered_as_installed("filters", "llm-judge", instructgen_judge, "judge")


@pytest.fixture
def tasks(tmp_path: Path) -> Path:
    dst = tmp_path / "seed_tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", dst)
    return dst


# -- reading replies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("4", 4.0),
        ("4.5\nThe response is accurate.", 4.5),
        ("Score: 4", 4.0),
        ("Score: 4\n\nExplanation: it lists 3 of the 5 steps.", 4.0),
        ("**Rating: 4/5**\n\nThe answer is right but terse.", 4.0),
        ("I would rate this 4 out of 5. It misses one case.", 4.0),
        ('{"score": 4, "explanation": "fine"}', 4.0),
        ('```json\n{"rating": 3.5}\n```', 3.5),
        ("Here is my evaluation of the response.\n\n**5**\n\nIt is complete.", 5.0),
        ("<think>It has 2 errors; 7 lines.</think>\n3\nTwo errors.", 3.0),
        ("Rating: 8/10\nMostly right.", 4.0),
        ("Accuracy score - 2.5 (of 5)", 2.5),
        (" 4\nThe output matches the input.", 4.0),  # a completion after "Score:"
    ],
)
def test_replies_are_read_in_the_styles_models_write(reply: str, score: float) -> None:
    assert read_score(reply) == score


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "The response is quite good and addresses the instruction.",
        "The response lists 3 reasons, all of them correct.",  # a number, but not a score
        "Score: 7",  # outside the 0-5 scale
        "Rating: high",
        '{"verdict": "good"}',
    ],
)
def test_a_reply_without_a_score_is_never_taken_as_one(reply: str) -> None:
    assert read_score(reply) is None


def test_the_prompt_holds_the_row_fenced_and_the_rubric() -> None:
    judge = LLMJudge()
    row = {"instruction": "Add the numbers.", "text": "2 and 3", "target": "5"}
    req = judge.request(row, chat=True)
    prompt = req.as_prompt()
    assert "Add the numbers." in prompt and "2 and 3" in prompt and "\n5\n" in prompt
    assert "scale from 0 to 5" in prompt and "first line" in prompt
    assert req.temperature == 0.0 and judge.threshold == 4.5
    again = judge.request(row, chat=True, attempt=1).as_prompt()
    assert again != prompt and "held no score" in again
    with pytest.raises(ValueError):
        LLMJudge(threshold=6)


# -- in a run, against the local server --------------------------------------------------------


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
            "200",
            "--num-instructions",
            "120",
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


def test_judged_run_exact_count_scores_requests_and_rerun(tasks: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with WireServer() as server:
        server.responder = judge_responder.respond
        r = _generate(tasks, server, out)
        assert r.exit_code == 0, r.output
        ds = InstructionDataset.load(out)
        assert len(ds) == 200
        assert all(s is not None and s >= 4 for s in ds["judge_score"])
        report = json.loads((out / "run.json").read_text())
        j = report["judge"]
        calls = [c for c in server.requests if judge_responder.is_judge(c)]
        rated = {judge_responder.rated_part(c.prompt) for c in calls}
        # one rating a row; a reply without a score is asked again (up to 3 times in all)
        assert j["rows_judged"] == len(rated)
        assert j["rating_requests"] == len(calls)
        assert len(calls) == j["rows_judged"] + j["unreadable_replies"] - j["rows_unjudged"]
        assert j["unreadable_replies"] > 0 and j["rows_unjudged"] > 0  # the responder's styles
        assert j["rows_kept"] == 200 and j["rows_below_threshold"] > 0
        assert j["method_runs"] >= 2  # drops were made up for by generating more
        assert sum(j["histogram"].values()) == j["rows_judged"]
        assert j["histogram"]["unjudged"] == j["rows_unjudged"]
        html_file = tmp_path / "report.html"
        rep = CliRunner().invoke(cli, ["report", str(out), "--out", str(html_file)])
        assert rep.exit_code == 0, rep.output
        page = html_file.read_text()
        assert "Judge scores" in page and f"kept 200 of {j['rows_judged']}" in page
        sent = len(server.requests)
        r2 = _generate(tasks, server, out)
        assert r2.exit_code == 0, r2.output
        assert len(server.requests) == sent  # a rerun sends nothing
        assert InstructionDataset.load(out) == ds
        summary = json.loads(r2.output)
        assert summary["requests"]["requests_sent"] == 0
        assert summary["judge"]["rows_kept"] == 200

        # the saved dataset judged on its own: the same scores, all from the run's cache
        out2 = tmp_path / "judged"
        r3 = CliRunner().invoke(
            cli,
            [
                "judge",
                str(out),
                "--engine",
                "openai",
                "--model",
                "gpt-4o-mini",
                "--base-url",
                server.openai_base_url,
                "--threshold",
                "4",
                "--out",
                str(out2),
                "--json",
            ],
            env={"OPENAI_API_KEY": TEST_KEY},
        )
        assert r3.exit_code == 0, r3.output
        assert len(server.requests) == sent  # cache hits only
        again = InstructionDataset.load(out2)
        assert again["judge_score"] == ds["judge_score"]
        assert again["instruction"] == ds["instruction"]
        assert json.loads(r3.output)["requests"]["requests_sent"] == 0


def test_judge_scores_match_the_responder_and_export_keeps_the_column(tmp_path: Path) -> None:
    rows = [
        {"instruction": f"Describe item {i}.", "text": "", "target": f"Item {i} is a thing."}
        for i in range(60)
    ]
    with WireServer() as server:
        server.responder = judge_responder.respond
        eng = instructgen.engine(
            "openai", api_key=TEST_KEY, base_url=server.openai_base_url, model="gpt-4o-mini"
        )
        ds = InstructionDataset(rows).judge(eng, threshold=3, cache=tmp_path / "c.sqlite3")
        expected = {}
        for c in server.requests:
            part = judge_responder.rated_part(c.prompt)
            if judge_responder.kind_of(c.prompt) != "never":
                expected[part.split("\n", 1)[0]] = judge_responder.score_of(c.prompt)
        assert len(ds) == sum(1 for s in expected.values() if s >= 3)
        for row in ds:
            assert row["judge_score"] == expected[row["instruction"]]
        j = ds.run_report["judge"]
        assert j["rows_judged"] == 60 and j["rows_kept"] == len(ds)
        ds.save(tmp_path / "saved")
        assert InstructionDataset.load(tmp_path / "saved") == ds
        ds.export("jsonl", tmp_path / "d.jsonl")
        first = json.loads((tmp_path / "d.jsonl").read_text().splitlines()[0])
        assert first["judge_score"] == ds[0]["judge_score"]


def test_batch_mode_sends_the_ratings_through_the_batch_api(tasks: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with BatchWireServer() as server:
        server.responder = judge_responder.respond
        r = CliRunner().invoke(
            cli,
            [
                "generate",
                str(tasks),
                "--engine",
                "openai",
                "--base-url",
                server.openai_base_url,
                "-n",
                "20",
                "--num-instructions",
                "20",
                "--filter",
                "llm-judge",
                "--out",
                str(out),
                "--batch",
                "--batch-poll",
                "0.01",
                "--json",
            ],
            env={"OPENAI_API_KEY": TEST_KEY},
        )
        assert r.exit_code == 0, r.output
        judged = [c for c in server.requests if judge_responder.is_judge(c)]
        in_batches = [
            line
            for f in server.files.values()
            for line in f["text"].splitlines()
            if '"url"' in line and judge_responder.MARK in line
        ]
        # every rating went through a batch: as many judge calls as judge lines submitted
        assert judged and len(judged) == len(in_batches)
        j = json.loads((out / "run.json").read_text())["judge"]
        assert j["rating_requests"] == len(judged)
        assert len(InstructionDataset.load(out)) == 20
        assert all(s >= 4.5 for s in InstructionDataset.load(out)["judge_score"])


def test_judge_flags_without_the_judge_and_a_bad_threshold_exit_2(tasks: Path) -> None:
    r = CliRunner().invoke(
        cli, ["generate", str(tasks), "--engine", "openai", "--judge-threshold", "4"]
    )
    assert r.exit_code == 2 and "--filter llm-judge" in r.output
    r = CliRunner().invoke(
        cli,
        [
            "generate",
            str(tasks),
            "--engine",
            "openai",
            "--filter",
            "llm-judge",
            "--judge-threshold",
            "9",
            "--dry-run",
        ],
    )
    assert r.exit_code == 2 and "threshold" in r.output


def test_the_dry_run_prices_the_judge(tasks: Path) -> None:
    r = CliRunner().invoke(
        cli,
        [
            "generate",
            str(tasks),
            "--engine",
            "openai",
            "-n",
            "100",
            "--num-instructions",
            "100",
            "--filter",
            "llm-judge",
            "--judge-model",
            "gpt-4o",
            "--dry-run",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["requests"]["judge"] == 200  # 100 rows over the prior pass rate of 0.5
    assert set(out["engines"]) == {"openai:gpt-4o-mini", "openai:gpt-4o"}
    assert out["engines"]["openai:gpt-4o"]["roles"] == ["judge"]
    assert Counter(s["role"] for s in out["stages"])["judge"] == 1

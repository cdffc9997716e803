"""The alpaca method: Alpaca's prompt and parsing, exact counts with Alpaca's filters, at most one
request per 10 kept rows, resume after kill -9, batch mode, the dry run, the budget."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from batch_server import BatchWireServer
from click.testing import CliRunner
from conftest import SHARED, TEST_KEY
from kill_resume import kill_then_resume
from selfinstruct_responder import respond
from wire_server import WireServer

import instructgen
from instructgen import InstructionDataset
from instructgen.cli import cli

pytest.importorskip("instructgen_alpaca")

from instructgen_alpaca.prompts import AlpacaItem, encode_prompt, parse_reply

SEEDS = [
    AlpacaItem("Give three tips for staying healthy.", "", "Eat well, sleep, move."),
    AlpacaItem("Translate to French:", "Good morning", "Bonjour"),
    AlpacaItem("Is this review positive?", "Loved it!", "Yes"),
]


@pytest.fixture
def seed_file(tmp_path: Path) -> Path:
    dst = tmp_path / "seed_tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", dst)
    return dst


def test_the_prompt_follows_alpacas_structure() -> None:
    p = encode_prompt(SEEDS)
    assert "a set of 20 diverse task instructions" in p
    assert p.count("###\n") == 4  # before each of the 3 seed blocks and before the next number
    assert "1. Instruction: Give three tips for staying healthy.\n1. Input:\n<noinput>\n" in p
    assert "2. Instruction: Translate to French\n2. Input:\nGood morning\n2. Output:\nBonjour" in p
    assert p.endswith("###\n4. Instruction:")
    assert "9. The output is an appropriate response" in p  # the listed requirements


COMPLETION = """ Name two rivers that flow through Germany.
4. Input:
<noinput>
4. Output:
The Rhine and the Danube.
###
5. Instruction: Correct the grammar of the sentence.
5. Input:
She go to school every days.
5. Output:
She goes to school every day.
###
6. Instruction: Summarise the paragraph in one"""


def test_a_completion_continues_after_the_label_and_the_cut_block_is_dropped() -> None:
    parsed = parse_reply(COMPLETION, 4, cut_by_length=True)
    assert [i.instruction for i in parsed.items] == [
        "Name two rivers that flow through Germany.",
        "Correct the grammar of the sentence.",
    ]
    assert parsed.items[0].input == "" and parsed.items[1].input == "She go to school every days."
    assert parsed.dropped_cut == 1


def test_a_chat_reply_with_a_preamble_bold_labels_and_renumbering() -> None:
    text = (
        "Sure! Here are the next tasks:\n\n"
        "**4. Instruction:** Suggest a name for a bakery.\n**4. Input:**\n<noinput>\n"
        "**4. Output:**\nCrumbs & Co.\n\n"
        "**7. Instruction:** Rewrite the sentence in passive voice.\n"
        "**7. Input:** The cat chased the mouse.\n**7. Output:** The mouse was chased.\n"
        "###\n8. Instruction: Explain photosynthesis to a child.\n8. Output:\nPlants eat light."
    )
    parsed = parse_reply(text, 4, cut_by_length=False)
    assert [(i.instruction, i.input, i.output) for i in parsed.items] == [
        ("Suggest a name for a bakery.", "", "Crumbs & Co."),
        (
            "Rewrite the sentence in passive voice.",
            "The cat chased the mouse.",
            "The mouse was chased.",
        ),
    ]
    assert parsed.unparsed == 1  # the block without an Input label


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
            "alpaca",
            "--json",
            *extra,
        ],
        env={"OPENAI_API_KEY": TEST_KEY},
    )
    payload = json.loads(r.stdout) if r.stdout.strip().startswith("{") else {}
    return r.exit_code, payload, r.stderr + r.stdout


@pytest.mark.parametrize("engine", ["openai", "openai-completions"])
def test_500_rows_exactly_at_most_one_request_per_10(
    engine: str, seed_file: Path, tmp_path: Path
) -> None:
    with WireServer() as server:
        server.responder = respond
        r = CliRunner().invoke(
            cli,
            [
                "generate",
                str(seed_file),
                "--engine",
                engine,
                "--base-url",
                server.openai_base_url,
                "--out",
                str(tmp_path / "out"),
                "--method",
                "alpaca",
                "-n",
                "500",
                "--format",
                "alpaca",
                "--json",
            ],
            env={"OPENAI_API_KEY": TEST_KEY},
        )
        assert r.exit_code == 0, r.output
        calls = len(server.calls)
    rows = json.loads((tmp_path / "out" / "dataset.json").read_text())  # Alpaca's own format
    assert len(rows) == 500
    assert calls <= 50, calls
    assert all(row["instruction"] and row["output"] and "input" in row for row in rows)
    assert sum(row["input"] == "" for row in rows) > 50  # <noinput> became an empty input
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert report["method"] == "alpaca" and report["examples"] == 500
    drops = report["filter_drops"]
    assert drops["blacklist"] and drops["length"] and drops["write-a-program"] and drops["rouge"]
    assert any("'video'" in e for e in report["filter_drop_examples"]["blacklist"])
    instructions = [row["instruction"] for row in rows]
    assert len(set(instructions)) == 500


def test_unknown_method_and_options_exit_2_with_the_list(seed_file: Path, tmp_path: Path) -> None:
    code, _, err = cli_generate("http://127.0.0.1:9", seed_file, tmp_path / "o", "-m", "k", "v")
    assert code == 2 and "known: expected_yield, max_stalled_requests" in err
    r = CliRunner().invoke(cli, ["generate", str(seed_file), "--engine", "openai", "--method", "x"])
    assert r.exit_code == 2 and "unknown method 'x'; known: alpaca, " in r.stderr
    known = r.stderr.split("known: ", 1)[1].strip().split(", ")
    assert {"alpaca", "document-qa", "evol-instruct", "self-instruct"} <= set(known)
    assert known == sorted(known)  # listed in order, whatever else is installed
    code, _, err = cli_generate(
        "http://127.0.0.1:9", seed_file, tmp_path / "o", "-m", "window", "two"
    )
    assert code == 2 and "'two' is not a int" in err
    docs = tmp_path / "docs"
    docs.mkdir()
    r = CliRunner().invoke(
        cli,
        ["generate", str(docs), "--engine", "openai", "--method", "document-qa", "--window", "8"],
    )
    assert r.exit_code == 2
    assert "--window is Self-Instruct's; method 'document-qa' takes: chunk_size" in r.stderr
    assert not (tmp_path / "o").exists()


def test_methods_lists_every_method_with_paper_inputs_options() -> None:
    r = CliRunner().invoke(cli, ["methods", "--json"])
    assert r.exit_code == 0, r.output
    by_name = {m["name"]: m for m in json.loads(r.stdout)["methods"]}
    assert {"self-instruct", "document-qa", "alpaca"} <= set(by_name)
    alpaca = by_name["alpaca"]
    assert "Taori" in alpaca["paper"] and alpaca["inputs"] == ["tasks", "dataset"]
    assert {"num_prompt_instructions", "window"} <= {o["name"] for o in alpaca["options"]}
    assert alpaca["requests_per_example"] < 0.1


def test_dry_run_counts_requests_and_cost_and_sends_nothing(seed_file: Path) -> None:
    r = CliRunner().invoke(
        cli,
        [
            "generate",
            str(seed_file),
            "--engine",
            "openai",
            "--method",
            "alpaca",
            "-n",
            "500",
            "--dry-run",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["requests"]["generate"] == 42  # ceil(500 / 12 expected kept per reply)
    assert 0 < d["expected_cost_usd"] < d["max_cost_usd"]
    assert d["first_prompts"]["generate"].endswith("###\n4. Instruction:")


def test_max_cost_stops_and_a_rerun_resumes(seed_file: Path, tmp_path: Path) -> None:
    with WireServer() as server:
        server.responder = respond
        code, _, err = cli_generate(
            server.openai_base_url, seed_file, tmp_path / "o", "-n", "200", "--max-cost", "0.004"
        )
        assert code == 1 and "budget" in err
        code, payload, err = cli_generate(
            server.openai_base_url, seed_file, tmp_path / "o", "-n", "200"
        )
        assert code == 0, err
        assert payload["examples"] == 200 and payload["requests"]["requests_cached"] > 0
        assert server.paid_twice() == []


def test_no_filter_and_python_api(seed_file: Path, tmp_path: Path) -> None:
    with WireServer() as server:
        server.responder = respond
        eng = instructgen.engine("openai", api_key=TEST_KEY, base_url=server.openai_base_url)
        ds = InstructionDataset.generate_dataset(
            seed_file,
            eng,
            60,
            method="alpaca",
            method_options={"window": "4"},
            cache=False,
            filters=["length"],
        )
        assert len(ds) == 60 and ds.run_report["method_options"]["window"] == 4
        assert set(ds.run_report["filter_drops"]) <= {"length"}
        with pytest.raises(instructgen.UnknownNameError, match="known: expected_yield"):
            InstructionDataset.generate_dataset(
                seed_file, eng, 5, method="alpaca", method_options={"rounds": 3}, cache=False
            )


def test_batch_mode_sends_every_alpaca_request_through_batches(
    seed_file: Path, tmp_path: Path
) -> None:
    with BatchWireServer() as server:
        server.responder = respond
        code, payload, err = cli_generate(
            server.openai_base_url,
            seed_file,
            tmp_path / "o",
            "-n",
            "100",
            "--batch",
            "--batch-poll",
            "0.02",
        )
        assert code == 0, err
    req = payload["requests"]
    assert server.batches_created >= 1
    assert req["requests_sent"] == 0  # nothing online: every request is batchable
    assert req["batch"]["requests_completed"] >= 9
    assert payload["examples"] == 100


def test_kill_9_at_random_moments_then_rerun_equals_uninterrupted(
    seed_file: Path, tmp_path: Path
) -> None:
    args = [
        "generate",
        str(seed_file),
        "--engine",
        "openai",
        "--method",
        "alpaca",
        "-n",
        "300",
        "--concurrency",
        "4",
        "-m",
        "window",
        "8",
        "--format",
        "jsonl",
    ]
    env = {**os.environ, "OPENAI_API_KEY": TEST_KEY}
    got = kill_then_resume(args, tmp_path, env, respond, kills=2, latency=0.05)
    # only what was in flight at a kill (at most --concurrency each time) is paid twice
    assert len(got.paid_twice) <= 4 * len(got.moments), (got.moments, got.paid_twice)
    assert got.resumed == got.reference, got.moments


class _ThreadRecordingFilter(instructgen.Filter):
    """The length rule, recording which thread primes, checks and keeps."""

    name = "thread-recorder"

    def __init__(self) -> None:
        super().__init__()
        self.threads: dict[str, set[int]] = {"prime": set(), "check": set(), "keep": set()}
        self.primed: list[int] = []

    def prime(self, kept: Any) -> None:
        import threading

        self.threads["prime"].add(threading.get_ident())
        self.primed.append(len(kept))

    def check(self, item: str) -> str | None:
        import threading

        self.threads["check"].add(threading.get_ident())
        return None if len(item.split()) > 3 else "short"

    def keep(self, item: str) -> None:
        import threading

        self.threads["keep"].add(threading.get_ident())


@pytest.mark.parametrize("method", ["alpaca", "self-instruct"])
def test_filters_are_primed_and_run_off_the_event_loop(seed_file: Path, method: str) -> None:
    """Priming indexes every seed (or a whole saved dataset): it runs in the filters' worker
    thread like check and keep, never on the thread running the event loop."""
    import asyncio
    import threading

    from instructgen.dispatch import DispatchConfig
    from instructgen.method import RunSize
    from instructgen.runs import run_method

    recorder = _ThreadRecordingFilter()
    loop_thread: set[int] = set()

    async def main(base_url: str) -> Any:
        loop_thread.add(threading.get_ident())
        eng = instructgen.engine("openai", api_key=TEST_KEY, base_url=base_url)
        return await run_method(
            method,
            seed_file,
            eng,
            size=RunSize(n=40, num_instructions=20, seed=3),
            cache=False,
            config=DispatchConfig(concurrency=8),
            filters=[recorder],
        )

    with WireServer() as server:
        server.responder = respond
        result = asyncio.run(main(server.openai_base_url))
    assert len(result.rows) == 40
    assert recorder.primed == [175]  # the seed instructions, once
    for stage, threads in recorder.threads.items():
        assert threads, stage
        assert not threads & loop_thread, stage

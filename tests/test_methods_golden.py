"""Self-Instruct and document Q/A as methods make the same datasets, byte for byte, and the same
run.json (its deterministic parts) as the code before methods became plugins (goldens captured
from 772d444 by ``tests/method_goldens.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from method_goldens import ALPACA_CASES, CASES, alpaca_summary, run_case

GOLDENS = Path(__file__).parent / "fixtures" / "goldens"


def contains(new: Any, old: Any, where: str = "run.json") -> None:
    """Every key of ``old`` is in ``new`` with the same value (new keys may be added)."""
    if isinstance(old, dict):
        assert isinstance(new, dict), where
        for k, v in old.items():
            assert k in new, f"{where}.{k} missing"
            contains(new[k], v, f"{where}.{k}")
    else:
        assert new == old, f"{where}: {new!r} != {old!r}"


@pytest.mark.parametrize("case", [c for c in CASES if c not in ALPACA_CASES])
def test_dataset_and_report_unchanged(case: str, tmp_path: Path) -> None:
    got = run_case(case, tmp_path)
    assert got["dataset"] == (GOLDENS / f"{case}.jsonl").read_bytes()
    contains(got["report"], json.loads((GOLDENS / f"{case}.run.json").read_text()))


def test_prompt_lists_make_the_same_dataset(tmp_path: Path) -> None:
    """The completions case with prompt lists (the engine's default): fewer requests, the same
    dataset byte for byte."""
    got = run_case("selfinstruct-completions", tmp_path, extra=["--prompts-per-request", "20"])
    assert got["dataset"] == (GOLDENS / "selfinstruct-completions.jsonl").read_bytes()
    requests = got["report"]["requests"]
    assert requests["prompts_sent"] == 25 > requests["requests_sent"]


@pytest.mark.parametrize("case", list(ALPACA_CASES))
def test_alpaca_dataset_unchanged(case: str, tmp_path: Path) -> None:
    """The same alpaca rows for the same seed, byte for byte, as the goldens captured before
    the ROUGE-L filter and the window were made faster (chat and completions engines, a small
    window, the unicode tokenizer, and 5,000 rows where the pool is large)."""
    golden = json.loads((GOLDENS / "alpaca.json").read_text(encoding="utf-8"))[case]
    assert alpaca_summary(run_case(case, tmp_path)) == golden


def test_document_qa_through_generate_method_gives_the_from_dir_dataset(tmp_path: Path) -> None:
    """The same directory run reached as a method (`generate DIR --method document-qa`)."""
    from click.testing import CliRunner
    from conftest import TEST_KEY
    from method_goldens import make_documents
    from selfinstruct_responder import respond
    from wire_server import WireServer

    from instructgen.cli import cli

    docs = make_documents(tmp_path / "docs")
    with WireServer() as server:
        server.responder = respond
        r = CliRunner().invoke(
            cli,
            [
                "generate",
                str(docs),
                "--method",
                "document-qa",
                "-m",
                "samples_per_chunk",
                "3",
                "-m",
                "chunk_size",
                "1500",
                "-n",
                "1000",
                "--engine",
                "openai",
                "--base-url",
                server.openai_base_url,
                "--out",
                str(tmp_path / "out"),
                "--format",
                "jsonl",
                "--json",
            ],
            env={"OPENAI_API_KEY": TEST_KEY},
        )
    assert r.exit_code == 0, r.output
    got = (tmp_path / "out" / "dataset.jsonl").read_bytes()
    assert got == (GOLDENS / "document-qa.jsonl").read_bytes()
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert report["method"] == "document-qa" and report["question_answer_pairs"] == 27

"""Question/answer replies as models really write them, on every engine over its real SDK:
tolerant parsing, follow-ups for what is missing, the accounting in run.json, and the fenced
prompt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ENGINES, engine_env, make_engine
from wire_server import WireCall, WireServer, qa_responder

from instructgen import InstructionDataset
from instructgen.cli import cli
from instructgen.documents import parse_qa
from instructgen.documents.qa import MAX_FOLLOW_UPS

SAMPLES = 3
WORDS = "solar panels convert sunlight into electricity through photovoltaic cells " * 30


def _docs(tmp_path: Path, files: int = 3, chunks_each: int = 2) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(files):
        paras = [f"Section {j} of note {i}. {WORDS}" for j in range(chunks_each)]
        (docs / f"note-{i}.txt").write_text("\n\n".join(paras), encoding="utf-8")
    return docs


def _run(server: WireServer, engine: str, docs: Path, out: Path) -> InstructionDataset:
    return InstructionDataset.generate_dataset_from_dir(
        docs,
        make_engine(server, engine),
        chunk_size=2400,
        num_samples_per_chunk=SAMPLES,
        out=out,
        workers=0,
    )


# -- one reply style at a time, every engine --------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("style", ["asked", "preamble", "bold", "numbered", "json", "short"])
def test_every_style_gives_exactly_chunks_times_samples(
    wire_server: WireServer, tmp_path: Path, engine: str, style: str
) -> None:
    wire_server.responder = qa_responder(style)
    ds = _run(wire_server, engine, _docs(tmp_path), tmp_path / "out")
    report = ds.run_report
    chunks = report["extraction"]["chunks"]
    assert chunks >= 4
    assert len(ds) == chunks * SAMPLES == report["question_answer_pairs"]
    replies = report["question_answer_replies"]
    assert replies["short_chunks"] == [] and replies["unparsed_replies"] == 0
    if style == "short":  # one pair fewer each time: one follow-up per chunk fills the gap
        assert replies["follow_up_requests"] == chunks
        assert len(wire_server.prompt_calls) == 2 * chunks
    else:
        assert replies["follow_up_requests"] == 0 and len(wire_server.prompt_calls) == chunks
    assert len({row["instruction"] for row in ds}) == len(ds)  # no repeated question
    assert all(row["target"] and "Let me know" not in row["target"] for row in ds)


@pytest.mark.parametrize("engine", ENGINES)
def test_nothing_parseable_is_reported_and_does_not_poison_the_rerun(
    wire_server: WireServer, tmp_path: Path, engine: str
) -> None:
    wire_server.responder = qa_responder("nothing")
    docs, out = _docs(tmp_path, files=2, chunks_each=1), tmp_path / "out"
    ds = _run(wire_server, engine, docs, out)
    report = ds.run_report
    chunks = report["extraction"]["chunks"]
    assert len(ds) == 0
    replies = report["question_answer_replies"]
    # the first request and at most two follow-ups per chunk
    assert len(wire_server.prompt_calls) == chunks * (1 + MAX_FOLLOW_UPS)
    assert replies["unparsed_replies"] == chunks * (1 + MAX_FOLLOW_UPS)
    short = replies["short_chunks"]
    assert sorted(s["file"] for s in short) == ["note-0.txt", "note-1.txt"]
    assert all(s["pairs"] == 0 and s["asked"] == SAMPLES for s in short)
    assert all("can't produce questions" in e for s in short for e in s["reply_excerpts"])
    # The server gets better: the rerun replays the cached failures, then asks anew.
    wire_server.responder = qa_responder("asked")
    wire_server.reset_counts()
    ds = _run(wire_server, engine, docs, out)
    assert len(ds) == chunks * SAMPLES
    assert (
        len(wire_server.prompt_calls) == chunks
    )  # one new follow-up per chunk, nothing paid twice
    assert wire_server.paid_twice() == []


def test_cli_summary_counts_unparsed_replies_and_run_json_names_short_chunks(
    wire_server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wire_server.responder = qa_responder("nothing")
    docs = _docs(tmp_path, files=1, chunks_each=1)
    env = engine_env(wire_server, "openai")
    monkeypatch.setenv(env["key_var"], env["key"])
    out = tmp_path / "out"
    args = ["from-dir", str(docs), "--engine", "openai", "--base-url", env["base_url"]]
    r = CliRunner().invoke(cli, [*args, "--out", str(out), "--workers", "0"])
    assert r.exit_code == 1
    assert "3 replies unparsed" in r.stdout and "1 chunks short" in r.stdout
    assert "3 of 3 replies held no question/answer pairs" in r.stderr
    run = json.loads((out / "run.json").read_text())
    short = run["question_answer_replies"]["short_chunks"]
    assert short[0]["file"] == "note-0.txt" and short[0]["reply_excerpts"]


def test_chunks_short_after_follow_ups_are_a_warning_with_the_way_out(
    wire_server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def stubborn(call: WireCall) -> str:  # one chunk's replies never hold a pair
        if "note-1.txt" in call.prompt:
            return "I'd rather talk about something else."
        return qa_responder("asked")(call)  # type: ignore[return-value]

    wire_server.responder = stubborn
    docs = _docs(tmp_path, files=2, chunks_each=1)
    env = engine_env(wire_server, "openai")
    monkeypatch.setenv(env["key_var"], env["key"])
    args = ["from-dir", str(docs), "--engine", "openai", "--base-url", env["base_url"]]
    r = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "out"), "--workers", "0"])
    assert r.exit_code == 0, r.stderr
    assert "wrote 5 examples" in r.stdout and "1 chunks short" in r.stdout
    assert "warning: 1 chunks gave fewer pairs than asked" in r.stderr
    assert "rerun the same command" in r.stderr


def test_a_mixed_server_over_many_chunks_gives_exactly_chunks_times_samples(
    wire_server: WireServer, tmp_path: Path
) -> None:
    wire_server.responder = qa_responder("mixed")
    docs = _docs(tmp_path, files=13, chunks_each=4)
    ds = _run(wire_server, "openai", docs, tmp_path / "out")
    report = ds.run_report
    chunks = report["extraction"]["chunks"]
    assert chunks >= 50
    assert len(ds) == chunks * SAMPLES
    assert report["question_answer_replies"]["short_chunks"] == []
    assert report["question_answer_replies"]["follow_up_requests"] > 0


# -- the parser ---------------------------------------------------------------------------------

PAIRS = [("What is X?", "X is y."), ("Who?", "Bob.")]


@pytest.mark.parametrize(
    "reply",
    [
        "Q1: What is X?\nA1: X is y.\nQ2: Who?\nA2: Bob.",
        "Q: What is X?\nA: X is y.\n\nQ: Who?\nA: Bob.",
        "Sure! Here are two pairs:\n\nQ1: What is X?\nA1: X is y.\n\nQ2: Who?\nA2: Bob.\n\n"
        "Let me know if you need more questions!",
        "**Q1:** What is X?\n**A1:** X is y.\n\n**Q2:** Who?\n**A2:** Bob.",
        "**Question 1:** What is X?\n**Answer:** X is y.\n\n**Question 2:** Who?\n**Answer:** Bob.",
        "1. Question: What is X?\n   Answer: X is y.\n2. Question: Who?\n   Answer: Bob.",
        "1. What is X?\nAnswer: X is y.\n2. Who?\nAnswer: Bob.",
        "### Question 1\nWhat is X?\n### Answer\nX is y.\n\n### Question 2\nWho?\n### Answer\nBob.",
        "- **Q:** What is X?\n  **A:** X is y.\n- **Q:** Who?\n  **A:** Bob.",
        "Q: What is X? A: X is y.\nQ: Who? A: Bob.",
        '```json\n[{"question": "What is X?", "answer": "X is y."},\n'
        ' {"question": "Who?", "answer": "Bob."}]\n```\nHope this helps.',
        '{"pairs": [{"question": "What is X?", "answer": "X is y."}, '
        '{"question": "Who?", "answer": "Bob."}]}',
        '{"pairs": [{"Question": "What is X?", "Answer": "X is y."}, '
        '{"question": "Who?", "answer": "Bob."}, {"question": "Cut o',
        "Here are two pairs:\n\n1. **What is X?**\n   X is y.\n\n2. **Who?**\n   Bob.\n\n"
        "I hope these help!",
        "| # | Question | Answer |\n|---|---|---|\n| 1 | What is X? | X is y. |\n"
        "| 2 | Who? | Bob. |",
        "<think>\nThe user wants pairs. Draft:\nQ1: What is Z?\nA1: Z.\n</think>\n\n"
        "Q1: What is X?\nA1: X is y.\nQ2: Who?\nA2: Bob.",
    ],
)
def test_parser_reads_the_styles_models_write(reply: str) -> None:
    assert parse_qa(reply) == PAIRS


@pytest.mark.parametrize(
    "reply",
    [
        "Pregunta 1: What is X?\nRespuesta 1: X is y.\n\nPregunta 2: Who?\nRespuesta 2: Bob.",
        "**Question 1 :** What is X?\n**Réponse :** X is y.\n**Question 2 :** Who?\n"
        "**Réponse :** Bob.",
        "Frage 1: What is X?\nAntwort: X is y.\nFrage 2: Who?\nAntwort: Bob.",
        "问题1：What is X?\n答案：X is y.\n问题2：Who?\n答案：Bob.",
        "Question 1 - What is X?\nAnswer - X is y.\nQuestion 2 - Who?\nAnswer - Bob.",
    ],
)
def test_parser_reads_labels_in_the_documents_language(reply: str) -> None:
    assert parse_qa(reply) == PAIRS


def test_parser_edges() -> None:
    assert parse_qa("I cannot help with that.") == []
    assert parse_qa("1. First point of the summary.\n2. Second point.") == []
    assert parse_qa("<think>Q1: What is X?\nA1: X is y. Hmm, and then") == []  # cut off
    assert parse_qa(" What is X?\nA1: X is y.\nQ2: Who?\nA2: Bob.", completion_prefix=True) == PAIRS
    cut = "Q1: What is X?\nA1: X is y.\nQ2: Who?\nA2: Bob, and then the"
    assert parse_qa(cut, cut_last=True) == PAIRS[:1]
    multi = "Q1: What is X?\nA1: X is y.\nIt is also z.\nQ2: Who?\nA2: Bob."
    assert parse_qa(multi)[0] == ("What is X?", "X is y.\nIt is also z.")
    lines = (
        "Q1: What is X?\nA1: X is y.\nAn aside: A. Smith.\nAnswer key: none.\nQ2: Who?\nA2: Bob."
    )
    assert parse_qa(lines)[0] == ("What is X?", "X is y.\nAn aside: A. Smith.\nAnswer key: none.")

"""Structured output for instructgen's own prompts (the document Q/A), as each real SDK sends
it on the wire, and the fallback for OpenAI-compatible servers without schema support."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import ENGINES, SHARED, make_engine
from selfinstruct_responder import respond
from wire_server import WireServer, qa_responder

from instructgen import InstructionDataset
from instructgen.dispatch import DispatchConfig
from instructgen.documents.qa import QA_SCHEMA
from instructgen.engines import engine_class

SCHEMA = {k: v for k, v in QA_SCHEMA.items() if k != "title"}
COHERE_SCHEMA = {
    "type": "object",
    "properties": {
        "pairs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
                "required": ["question", "answer"],
            },
        }
    },
    "required": ["pairs"],
}
EXPECTED = {
    "openai": {
        "type": "json_schema",
        "json_schema": {"name": "qa_pairs", "schema": SCHEMA, "strict": True},
    },
    "cohere": {"type": "json_object", "json_schema": COHERE_SCHEMA},
    "ai21": {"type": "json_object"},
    "openai-completions": None,
}
CAPABILITY = {
    "openai": "json_schema",
    "cohere": "json_schema",
    "ai21": "json_object",
    "openai-completions": None,
}


def _docs(tmp_path: Path, n: int = 4) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir(parents=True)
    for i in range(n):
        (docs / f"d{i}.txt").write_text(f"Document {i} is about tide tables. " * 20)
    return docs


def _run(server: WireServer, engine: str, tmp_path: Path, **kw: object) -> InstructionDataset:
    return InstructionDataset.generate_dataset_from_dir(
        _docs(tmp_path),
        make_engine(server, engine),
        num_samples_per_chunk=3,
        out=tmp_path / "out",
        workers=0,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_qa_requests_carry_each_providers_json_mode(
    wire_server: WireServer, tmp_path: Path, engine: str
) -> None:
    assert engine_class(engine).structured_output == CAPABILITY[engine]
    wire_server.responder = qa_responder("asked")  # JSON when JSON is asked for
    ds = _run(wire_server, engine, tmp_path)
    assert len(ds) == 4 * 3
    assert len(wire_server.prompt_calls) == 4
    for call in wire_server.prompt_calls:
        assert call.body.get("response_format") == EXPECTED[engine]
        if EXPECTED[engine] is None:
            assert "Q1: <question>" in call.prompt
        else:
            assert "Reply with a JSON object" in call.prompt  # JSON modes need it said


def test_openai_falls_back_to_json_object_then_plain_and_remembers(
    wire_server: WireServer, tmp_path: Path
) -> None:
    wire_server.responder = qa_responder("asked")
    wire_server.reject_response_formats = {"json_schema"}
    ds = _run(wire_server, "openai", tmp_path / "a", config=DispatchConfig(concurrency=1))
    assert len(ds) == 12
    kinds = [(c.body.get("response_format") or {}).get("type") for c in wire_server.calls]
    assert kinds == ["json_schema"] + ["json_object"] * 4  # one refusal, then remembered
    assert ds.run_report["failed_chunks"] == []

    wire_server.reset_counts()
    wire_server.reject_response_formats = {"json_schema", "json_object"}
    ds = _run(wire_server, "openai", tmp_path / "b", config=DispatchConfig(concurrency=1))
    assert len(ds) == 12
    kinds = [(c.body.get("response_format") or {}).get("type") for c in wire_server.calls]
    assert kinds == ["json_schema", "json_object"] + [None] * 4


def test_cohere_without_json_mode_falls_back_to_plain_requests(
    wire_server: WireServer, tmp_path: Path
) -> None:
    wire_server.responder = qa_responder("asked")
    wire_server.reject_response_formats = {"json_object"}
    ds = _run(wire_server, "cohere", tmp_path, config=DispatchConfig(concurrency=1))
    assert len(ds) == 12
    kinds = [(c.body.get("response_format") or {}).get("type") for c in wire_server.calls]
    assert kinds == ["json_object"] + [None] * 4


def test_a_plain_400_is_not_taken_for_a_format_refusal(
    wire_server: WireServer, tmp_path: Path
) -> None:
    wire_server.responder = qa_responder("asked")
    wire_server.inject("400", times=1)
    ds = _run(wire_server, "openai", tmp_path, config=DispatchConfig(concurrency=1))
    assert len(ds) == 3 * 3 and len(ds.run_report["failed_chunks"]) == 1
    kinds = {(c.body.get("response_format") or {}).get("type") for c in wire_server.calls}
    assert kinds == {"json_schema"}


def test_self_instruct_prompts_stay_the_papers(wire_server: WireServer, tmp_path: Path) -> None:
    seeds = tmp_path / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", seeds)
    wire_server.responder = respond
    ds = InstructionDataset.generate_dataset(
        str(seeds),
        make_engine(wire_server, "openai"),
        num_instructions_for_finetuning=4,
        num_instructions=4,
        cache=False,
    )
    assert len(ds) == 4
    assert wire_server.calls
    assert all("response_format" not in c.body for c in wire_server.calls)

"""Exporters write valid files in their formats; saved datasets round-trip exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from instructgen import DatasetError, InstructionDataset
from instructgen.cli import cli

ROWS = [
    {
        "instruction": "Translate to French.",
        "text": "Good morning",
        "target": "Bonjour",
        "engine": "openai",
        "model": "m",
        "seed_task_ids": ["s1", "s2"],
        "is_classification": False,
        "source": "self-instruct",
    },
    {
        "instruction": "Is the number even?",
        "text": "",
        "target": "No — it is 7 🙂",
        "engine": "ai21",
        "model": "j",
        "seed_task_ids": [],
        "is_classification": True,
        "source": "docs/a.pdf",
    },
]


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    ds = InstructionDataset(ROWS, {"examples": 2})
    return ds.save(tmp_path / "ds")


def test_save_load_round_trip(saved: Path) -> None:
    back = InstructionDataset.load(saved)
    assert back.rows == ROWS
    assert back.run_report == {"examples": 2}
    InstructionDataset(ROWS).save(saved)  # saving over an existing dataset replaces it
    assert InstructionDataset.load(saved).rows == ROWS


def test_empty_dataset_round_trip(tmp_path: Path) -> None:
    InstructionDataset([]).save(tmp_path / "e")
    assert len(InstructionDataset.load(tmp_path / "e")) == 0


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a saved instructgen dataset"):
        InstructionDataset.load(tmp_path)


def run_export(saved: Path, fmt: str, out: Path) -> None:
    r = CliRunner().invoke(cli, ["export", str(saved), "--format", fmt, "--out", str(out)])
    assert r.exit_code == 0, r.stderr


def test_jsonl(saved: Path, tmp_path: Path) -> None:
    run_export(saved, "jsonl", tmp_path / "d.jsonl")
    assert InstructionDataset.from_jsonl(tmp_path / "d.jsonl").rows == ROWS


def test_alpaca(saved: Path, tmp_path: Path) -> None:
    run_export(saved, "alpaca", tmp_path / "a.json")
    data = json.loads((tmp_path / "a.json").read_text())
    assert data == [
        {"instruction": r["instruction"], "input": r["text"], "output": r["target"]} for r in ROWS
    ]


def test_sharegpt(saved: Path, tmp_path: Path) -> None:
    run_export(saved, "sharegpt", tmp_path / "s.json")
    data = json.loads((tmp_path / "s.json").read_text())
    assert data[0]["conversations"] == [
        {"from": "human", "value": "Translate to French.\n\nGood morning"},
        {"from": "gpt", "value": "Bonjour"},
    ]
    assert data[1]["conversations"][0]["value"] == "Is the number even?"


def test_openai_chat_finetune(saved: Path, tmp_path: Path) -> None:
    run_export(saved, "openai", tmp_path / "o.jsonl")
    lines = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert len(lines) == 2
    for line in lines:
        assert list(line) == ["messages"]
        assert [m["role"] for m in line["messages"]] == ["user", "assistant"]
        assert all(isinstance(m["content"], str) and m["content"] for m in line["messages"])


def test_parquet(saved: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    run_export(saved, "parquet", tmp_path / "d.parquet")
    assert pq.read_table(tmp_path / "d.parquet").to_pylist() == ROWS


def test_unknown_format_is_exit_2(saved: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(
        cli, ["export", str(saved), "--format", "nope", "--out", str(tmp_path / "x")]
    )
    assert r.exit_code == 2 and "unknown exporter 'nope'" in r.stderr
    assert not (tmp_path / "x").exists()


def test_hook_exporters_registered() -> None:
    from instructgen import plugins

    assert {"jsonl", "alpaca", "sharegpt", "openai", "parquet"} <= set(plugins.exporters().names())

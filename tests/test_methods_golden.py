"""Self-Instruct and document Q/A as methods make the same datasets, byte for byte, and the same
run.json (its deterministic parts) as the code before methods became plugins (goldens captured
from 772d444 by ``tests/method_goldens.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from method_goldens import CASES, run_case

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


@pytest.mark.parametrize("case", list(CASES))
def test_dataset_and_report_unchanged(case: str, tmp_path: Path) -> None:
    got = run_case(case, tmp_path)
    assert got["dataset"] == (GOLDENS / f"{case}.jsonl").read_bytes()
    contains(got["report"], json.loads((GOLDENS / f"{case}.run.json").read_text()))

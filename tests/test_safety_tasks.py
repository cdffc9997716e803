"""The task loader refuses what JSON allows but a task file must not hold: nesting deep enough
to exhaust the interpreter, NaN and Infinity, NUL characters, instructions of any size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from instructgen.errors import TaskFileError
from instructgen.tasks import MAX_INSTRUCTION_CHARS, load_tasks

MAIN = "import sys\nfrom instructgen.cli import main\nmain(sys.argv[1:])\n"


def task(task_id: str, instruction: str = "Say hello.", **extra: object) -> str:
    obj = {"id": task_id, "instruction": instruction, "instances": [{"input": "", "output": "Hi"}]}
    return json.dumps({**obj, **extra})


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(TaskFileError) as info:
        load_tasks(path)
    return [str(p) for p in info.value.problems]


def test_nesting_100000_levels_deep_is_a_task_file_error_in_validate_and_generate(
    tmp_path: Path,
) -> None:
    deep = '{"id": "d", "instruction": "x", "instances": [], "deep": ' + "[" * 100_000
    deep += "]" * 100_000 + "}"
    path = write(tmp_path, task("a"), deep, task("b", meta=[[[[[[[[1]]]]]]]]))
    assert problems(path) == [f"{path}:2: JSON nested over 64 levels"]
    for command in (
        ["validate", str(path)],
        ["generate", str(path), "--engine", "openai", "--out", str(tmp_path / "o")],
    ):
        r = subprocess.run(
            [sys.executable, "-c", MAIN, *command], capture_output=True, text=True, timeout=120
        )
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr and "RecursionError" not in r.stderr
        assert f"{path}:2: JSON nested over 64 levels" in r.stdout + r.stderr
    assert not (tmp_path / "o").exists()  # refused before the output folder was made


def test_moderate_nesting_past_the_limit_names_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, task("a", meta=json.loads("[" * 100 + "]" * 100)))
    assert problems(path) == [f"{path}:1: meta[0][0]: JSON nested over 64 levels"]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_with_file_and_line(tmp_path: Path, constant: str) -> None:
    line = task("b").replace('"Hi"', '"Hi", "score": ' + constant)
    path = write(tmp_path, task("a"), line)
    assert problems(path) == [f"{path}:2: {constant} is not valid JSON (use a number or a string)"]


def test_nul_characters_are_refused_with_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, task("a"), task("b", "Say\u0000hello."), task("c", tag={"k\u0000": 1}))
    assert problems(path) == [
        f"{path}:2: instruction: NUL character (\\u0000) in a string",
        f"{path}:3: tag: NUL character (\\u0000) in a key",
    ]


def test_an_instruction_over_the_size_limit_is_a_clear_error(tmp_path: Path) -> None:
    long = "Explain this. " * (MAX_INSTRUCTION_CHARS // 10)
    huge = "x" * (50 * 1024 * 1024)  # 50 MB: refused before it is parsed
    path = write(tmp_path, task("a"), task("b", long), task("c", huge))
    found = problems(path)
    assert found[0].startswith(f"{path}:2: instruction: too long (")
    assert f"at most {MAX_INSTRUCTION_CHARS:,})" in found[0]
    assert found[1].startswith(f"{path}:3: line too long (52,428,")
    assert len(load_tasks(write(tmp_path, task("a", "x" * MAX_INSTRUCTION_CHARS)))) == 1

"""Seed-task files: the 175 real tasks validate; malformed files exit 2 with FILE:LINE: FIELD."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from instructgen import TaskFileError, load_tasks
from instructgen.cli import cli
from instructgen.tasks import check_tasks

SEED = Path(__file__).resolve().parents[2] / "shared" / "data" / "seed_tasks.jsonl"

GOOD = {"id": "t1", "instruction": "Say hi.", "instances": [{"input": "", "output": "hi"}]}


def line(**over: object) -> str:
    d = {**GOOD, **over}
    return json.dumps({k: v for k, v in d.items() if v is not ...})


def drop(key: str) -> str:
    return json.dumps({k: v for k, v in GOOD.items() if k != key})


OK2 = json.dumps({**GOOD, "id": "t2"})

# (case id, file bytes, expected line, expected field or None, text in the message)
CASES: list[tuple[str, bytes, int | None, str | None, str]] = [
    ("empty-file", b"", None, None, "empty file"),
    ("only-blank-lines", b"\n\n  \n", None, None, "empty file"),
    ("invalid-json", b"{not json}\n", 1, None, "invalid JSON"),
    ("truncated-json", (line()[:-5] + "\n").encode(), 1, None, "invalid JSON"),
    ("trailing-comma", b'{"id": "a",}\n', 1, None, "invalid JSON"),
    ("array-line", b"[1, 2]\n", 1, None, "the file is a JSON array"),
    ("array-second-line", (line() + "\n[1, 2]\n").encode(), 2, None, "expected a JSON object"),
    ("string-line", b'"hello"\n', 1, None, "expected a JSON object"),
    ("number-line", b"42\n", 1, None, "expected a JSON object"),
    ("null-line", b"null\n", 1, None, "expected a JSON object"),
    ("missing-id", (drop("id") + "\n").encode(), 1, "id", "required"),
    ("missing-instruction", (drop("instruction") + "\n").encode(), 1, "instruction", "required"),
    ("missing-instances", (drop("instances") + "\n").encode(), 1, "instances", "required"),
    ("id-int", (line(id=7) + "\n").encode(), 1, "id", "expected string"),
    ("id-null", (line(id=None) + "\n").encode(), 1, "id", "expected string"),
    ("id-empty", (line(id="") + "\n").encode(), 1, "id", "non-empty"),
    ("instruction-int", (line(instruction=3) + "\n").encode(), 1, "instruction", "expected string"),
    ("instruction-empty", (line(instruction="") + "\n").encode(), 1, "instruction", "non-empty"),
    ("instruction-blank", (line(instruction="   ") + "\n").encode(), 1, "instruction", "non-empty"),
    ("instruction-list", (line(instruction=["a"]) + "\n").encode(), 1, "instruction", "string"),
    ("instances-empty", (line(instances=[]) + "\n").encode(), 1, "instances", "at least one"),
    (
        "instances-object",
        (line(instances={"input": ""}) + "\n").encode(),
        1,
        "instances",
        "expected array",
    ),
    ("instances-string", (line(instances="x") + "\n").encode(), 1, "instances", "array"),
    (
        "instance-not-object",
        (line(instances=["x"]) + "\n").encode(),
        1,
        "instances[0]",
        "expected object",
    ),
    (
        "instance-missing-output",
        (line(instances=[{"input": ""}]) + "\n").encode(),
        1,
        "instances[0].output",
        "required",
    ),
    (
        "instance-missing-input",
        (line(instances=[{"output": "x"}]) + "\n").encode(),
        1,
        "instances[0].input",
        "required",
    ),
    (
        "instance-output-int",
        (line(instances=[{"input": "", "output": 1}]) + "\n").encode(),
        1,
        "instances[0].output",
        "expected string",
    ),
    (
        "instance-input-null",
        (line(instances=[{"input": None, "output": "x"}]) + "\n").encode(),
        1,
        "instances[0].input",
        "expected string",
    ),
    (
        "second-instance-bad",
        (
            line(instances=[{"input": "", "output": "a"}, {"input": 2, "output": "b"}]) + "\n"
        ).encode(),
        1,
        "instances[1].input",
        "expected string",
    ),
    ("name-int", (line(name=5) + "\n").encode(), 1, "name", "expected string"),
    (
        "is-classification-string",
        (line(is_classification="yes") + "\n").encode(),
        1,
        "is_classification",
        "expected boolean",
    ),
    (
        "is-classification-int",
        (line(is_classification=1) + "\n").encode(),
        1,
        "is_classification",
        "expected boolean",
    ),
    ("duplicate-id", (line() + "\n" + line() + "\n").encode(), 2, "id", "first on line 1"),
    (
        "duplicate-id-after-blank",
        (line() + "\n\n" + OK2 + "\n" + line() + "\n").encode(),
        4,
        "id",
        "first on line 1",
    ),
    (
        "bad-on-third-line",
        (line() + "\n" + OK2 + "\n" + "{oops\n").encode(),
        3,
        None,
        "invalid JSON",
    ),
    (
        "latin1-bytes",
        '{"id": "a", "instruction": "caf\u00e9"}\n'.encode("latin-1"),
        1,
        None,
        "not UTF-8",
    ),
    ("utf16-file", (line() + "\n").encode("utf-16"), 1, None, "the file is UTF-16"),
    ("bom-in-middle", (line() + "\n" + "\ufeff" + OK2 + "\n").encode(), 2, None, "invalid JSON"),
]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    return d


def test_at_least_30_malformed_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize(
    ("data", "lineno", "field", "text"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_malformed_task_file(
    workdir: Path, data: bytes, lineno: int | None, field: str | None, text: str
) -> None:
    path = workdir / "tasks.jsonl"
    path.write_bytes(data)
    before = sorted(p.name for p in workdir.iterdir())

    result = CliRunner().invoke(cli, ["validate", str(path)])

    assert result.exit_code == 2, result.output
    where = f"{path}:{lineno}:" if lineno is not None else f"{path}:"
    expected_prefix = where + (f" {field}:" if field else "")
    messages = [m for m in result.stderr.splitlines() if m.startswith(str(path))]
    assert any(m.startswith(expected_prefix) and text in m for m in messages), result.stderr
    assert sorted(p.name for p in workdir.iterdir()) == before  # nothing written

    with pytest.raises(TaskFileError) as err:
        load_tasks(path)
    assert err.value.exit_code == 2
    assert any(str(p).startswith(expected_prefix) for p in err.value.problems)


def test_every_problem_is_reported_in_one_pass(workdir: Path) -> None:
    path = workdir / "tasks.jsonl"
    path.write_text("\n".join([line(), "{bad", line(id=3), line(), drop("instruction")]) + "\n")
    with pytest.raises(TaskFileError) as err:
        load_tasks(path)
    got = [(p.line, p.field) for p in err.value.problems]
    # line 5 repeats line 1's id: said even though the line has another problem
    assert got == [(2, None), (3, "id"), (4, "id"), (5, "instruction"), (5, "id")]


def test_missing_file_and_directory(workdir: Path) -> None:
    r = CliRunner().invoke(cli, ["validate", str(workdir / "nope.jsonl")])
    assert r.exit_code == 2 and "cannot read" in r.stderr
    r = CliRunner().invoke(cli, ["validate", str(workdir)])
    assert r.exit_code == 2 and "is a directory" in r.stderr


def test_seed_tasks_validate(workdir: Path) -> None:
    path = workdir / "seed_tasks.jsonl"
    shutil.copy(SEED, path)
    r = CliRunner().invoke(cli, ["validate", str(path)])
    assert r.exit_code == 0, r.output
    assert "175 tasks, 26 classification" in r.stdout

    r = CliRunner().invoke(cli, ["validate", str(path), "--json"])
    summary = json.loads(r.stdout)
    assert (summary["ok"], summary["tasks"], summary["classification"]) == (True, 175, 26)


def test_json_output_lists_problems(workdir: Path) -> None:
    path = workdir / "t.jsonl"
    path.write_text(line(id=1) + "\n")
    r = CliRunner().invoke(cli, ["validate", str(path), "--json"])
    assert r.exit_code == 2
    summary = json.loads(r.stdout)
    assert summary["ok"] is False
    assert summary["problems"] == [f"{path}:1: id: expected string, got int"]


def test_bom_blank_lines_defaults_and_unknown_fields_kept(workdir: Path) -> None:
    path = workdir / "t.jsonl"
    rows = [
        line(extra={"k": 1}),
        "",
        "   ",
        json.dumps({**GOOD, "id": "t2", "name": "named", "is_classification": True}),
    ]
    path.write_bytes(b"\xef\xbb\xbf" + ("\r\n".join(rows) + "\r\n").encode())
    tasks = load_tasks(path)
    assert [t.id for t in tasks] == ["t1", "t2"]
    assert tasks[0].name == "t1" and tasks[0].is_classification is False
    assert tasks[0].extra == {"extra": {"k": 1}}
    assert tasks[0].to_dict()["extra"] == {"k": 1}
    assert tasks[1].name == "named" and tasks[1].is_classification is True
    assert tasks[1].line == 4


def test_schema_is_2020_12_and_shipped() -> None:
    from jsonschema import Draft202012Validator

    from instructgen.tasks import task_schema

    schema = task_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    Draft202012Validator.check_schema(schema)


def test_one_problem_is_reported_once(workdir: Path) -> None:
    path = workdir / "tasks.jsonl"
    path.write_text(line(instruction="") + "\n")
    _, problems = check_tasks(path)
    assert [(p.line, p.field) for p in problems] == [(1, "instruction")]

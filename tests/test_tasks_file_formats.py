"""Task files are read line by line: a 1 GB line is refused without being held in memory, and a
file in the wrong shape (a JSON array, a pretty-printed object, UTF-16) gets one line saying
what JSON Lines is and the command that converts it, instead of an error on every line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from instructgen.errors import TaskFileError
from instructgen.tasks import MAX_LINE_BYTES, load_tasks

MAIN = "import sys\nfrom instructgen.cli import main\nmain(sys.argv[1:])\n"
TASKS = [
    {"id": f"t{i}", "instruction": f"Say hello {i}.", "instances": [{"input": "", "output": "Hi"}]}
    for i in range(60)  # more than the 50 problems a TaskFileError shows
]
JSONL = "".join(json.dumps(t) + "\n" for t in TASKS)


def peak_rss(path: Path) -> tuple[int, str, int]:
    """``instructgen validate PATH`` in a child process: its exit code, stderr and peak
    resident size in bytes (``ru_maxrss`` of that one child, from wait4)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", MAIN, "validate", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    kib = usage.ru_maxrss  # KiB on Linux, bytes on macOS
    return proc.returncode, err, kib * (1 if sys.platform == "darwin" else 1024)


def one_problem(path: Path) -> str:
    with pytest.raises(TaskFileError) as info:
        load_tasks(path)
    assert len(info.value.problems) == 1, info.value.problems
    return str(info.value.problems[0])


@pytest.mark.skipif(not hasattr(os, "wait4"), reason="wait4")
def test_a_1_gb_line_is_refused_with_its_line_and_bounded_memory(tmp_path: Path) -> None:
    small = tmp_path / "small.jsonl"
    small.write_text(JSONL, encoding="utf-8")
    code, err, baseline = peak_rss(small)
    assert code == 0, err
    big = tmp_path / "tasks.jsonl"
    head = (json.dumps(TASKS[0]) + "\n" + '{"id": "big", "instruction": "').encode()
    with big.open("wb") as fh:
        fh.write(head)
        fh.truncate(len(head) + 2**30)  # a sparse 1 GB line (NUL bytes read back), no newline
    code, err, peak = peak_rss(big)
    assert code == 2, err
    line2 = len(head) - len(json.dumps(TASKS[0])) - 1 + 2**30
    assert err.splitlines()[0] == (
        f"{big}:2: line too long ({line2:,} bytes; at most {MAX_LINE_BYTES:,}): "
        "a seed task is an instruction and a few short examples"
    ), err
    assert "Traceback" not in err
    assert peak - baseline < 100 * 2**20, (peak, baseline)


def test_lines_after_an_over_long_one_are_still_read(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    long = '{"id": "long", "instruction": "' + "x" * (3 * MAX_LINE_BYTES) + '"}'
    first, *rest = JSONL.splitlines(keepends=True)
    path.write_bytes((first + long + "\r\n" + "".join(rest)).encode())
    assert one_problem(path) == (
        f"{path}:2: line too long ({len(long):,} bytes; at most {MAX_LINE_BYTES:,}): "
        "a seed task is an instruction and a few short examples"
    )
    at_limit = tmp_path / "limit.jsonl"
    line = json.dumps({**TASKS[0], "pad": ""})
    line = line.replace('"pad": ""', '"pad": "' + "p" * (MAX_LINE_BYTES - len(line)) + '"')
    assert len(line) == MAX_LINE_BYTES
    at_limit.write_text(line + "\n", encoding="utf-8")
    assert [t.id for t in load_tasks(at_limit)] == ["t0"]
    at_limit.write_text(line.replace('"pad": "', '"pad": "p') + "\n", encoding="utf-8")
    assert f"{at_limit}:1: line too long ({MAX_LINE_BYTES + 1:,} bytes" in one_problem(at_limit)


@pytest.mark.parametrize(
    ("name", "data", "what", "command"),
    [
        (
            "tasks.json",
            json.dumps(TASKS, indent=2).encode(),
            "the file is a JSON array",
            "jq -c '.[]' {path} > {dir}/tasks.jsonl",
        ),
        (
            "tasks.jsonl",
            json.dumps(TASKS).encode(),
            "the file is a JSON array",
            "jq -c '.[]' {path} > {dir}/tasks.converted.jsonl",
        ),
        (
            "tasks.json",
            "\n".join(json.dumps(t, indent=2) for t in TASKS).encode(),
            "a task is spread over several lines",
            "jq -c . {path} > {dir}/tasks.jsonl",
        ),
        (
            "tasks.jsonl",
            JSONL.encode("utf-16"),  # with its byte order mark
            "the file is UTF-16 (byte order mark FF FE)",
            "iconv -f UTF-16 -t UTF-8 {path} > {dir}/tasks.converted.jsonl",
        ),
        (
            "tasks.jsonl",
            JSONL.encode("utf-16-le"),  # no byte order mark
            "the file is UTF-16 little-endian",
            "iconv -f UTF-16LE -t UTF-8 {path} > {dir}/tasks.converted.jsonl",
        ),
        (
            "tasks.jsonl",
            JSONL.encode("utf-16-be"),
            "the file is UTF-16 big-endian",
            "iconv -f UTF-16BE -t UTF-8 {path} > {dir}/tasks.converted.jsonl",
        ),
    ],
    ids=["json-array", "array-in-jsonl", "pretty-printed", "utf16-bom", "utf16le", "utf16be"],
)
def test_a_file_in_another_shape_gets_one_line_with_the_fix(
    tmp_path: Path, name: str, data: bytes, what: str, command: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    fix = command.format(path=path, dir=tmp_path)
    r = subprocess.run(
        [sys.executable, "-c", MAIN, "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    found = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.startswith(str(path))]
    assert len(found) == 1, found  # one problem for the file, not one per line
    assert found[0].startswith(f"{path}:1: {what}"), found[0]
    assert "task files are JSON Lines (one task object per line, UTF-8)" in found[0]
    assert found[0].endswith(f"convert it with {fix}"), found[0]
    g = subprocess.run(
        [sys.executable, "-c", MAIN, "generate", str(path), "--engine", "openai"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "OPENAI_API_KEY": "sk-test"},
    )
    assert g.returncode == 2, g.stderr
    assert g.stderr.strip() == f"error: {found[0]}", g.stderr
    assert "Traceback" not in r.stderr
    tool = command.split()[0]
    if shutil.which(tool):  # the command given really converts the file
        subprocess.run(fix, shell=True, check=True, timeout=60)
        converted = Path(fix.split("> ")[1])
        assert [t.id for t in load_tasks(converted)] == [t["id"] for t in TASKS]


def test_a_json_lines_file_named_json_is_read(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    path.write_text(JSONL, encoding="utf-8")
    assert len(load_tasks(path)) == 60

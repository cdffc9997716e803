"""--out is instructgen's only when it is new, empty or written by instructgen; one run per
folder at a time; every way --out can be wrong is exit 2 with one line, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SHARED, TEST_KEY
from selfinstruct_responder import respond
from wire_server import WireServer

from instructgen import InstructionDataset
from instructgen.errors import FolderInUseError, OutputFolderError

MAIN = "import sys\nfrom instructgen.cli import main\nmain(sys.argv[1:])\n"
ROWS = [{"instruction": "Say hi.", "text": "", "target": "Hi."}]


def cli(*args: str, server: WireServer | None = None) -> list[str]:
    base = [] if server is None else ["--engine", "openai", "--base-url", server.openai_base_url]
    return [sys.executable, "-c", MAIN, *args, *base]


def env() -> dict[str, str]:
    return {**os.environ, "OPENAI_API_KEY": TEST_KEY}


def seed(tmp_path: Path, lines: int = 175) -> Path:
    tasks = tmp_path / "tasks.jsonl"
    src = (SHARED / "data" / "seed_tasks.jsonl").read_text(encoding="utf-8").splitlines()
    tasks.write_text("\n".join(src[:lines]) + "\n", encoding="utf-8")
    return tasks


def one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.stderr
    return errors[0]


def without_dac_override(cmd: list[str]) -> list[str]:
    """Run ``cmd`` so that file permissions apply (root ignores them otherwise)."""
    if os.geteuid() != 0:
        return cmd
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permissions cannot be tested")
    return ["setpriv", "--bounding-set", "-dac_override", "--inh-caps", "-dac_override", *cmd]


# -- whose folder ------------------------------------------------------------------------------


def test_out_on_a_folder_of_other_files_exits_2_and_deletes_nothing(tmp_path: Path) -> None:
    tasks = seed(tmp_path, 5)
    project = tmp_path / "P"
    (project / "data").mkdir(parents=True)
    (project / "data" / "important.csv").write_text("x\n")
    (project / "notes.txt").write_text("mine\n")
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    with WireServer() as server:
        server.responder = respond
        r = subprocess.run(
            [*cli("generate", str(tasks), "--out", str(project), "-n", "2", server=server)],
            env=env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        line = one_line_error(r)
        assert str(project) in line and "not instructgen's" in line
        # `--out .` in a project root: the same refusal
        r = subprocess.run(
            [*cli("generate", str(tasks), "--out", ".", "-n", "2", server=server)],
            env=env(),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=project,
        )
        assert "not instructgen's" in one_line_error(r)
        assert server.calls == []  # nothing sent
    assert sorted(p.relative_to(project) for p in project.rglob("*")) == before
    assert (project / "data" / "important.csv").read_text() == "x\n"


def test_save_refuses_a_folder_of_other_files_and_replaces_its_own(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    (foreign / "data").mkdir(parents=True)
    (foreign / "data" / "keep.txt").write_text("keep")
    with pytest.raises(OutputFolderError, match="not instructgen's"):
        InstructionDataset(ROWS).save(foreign)
    assert (foreign / "data" / "keep.txt").read_text() == "keep"
    assert sorted(os.listdir(foreign)) == ["data"]

    ours = InstructionDataset(ROWS).save(tmp_path / "ours")
    assert (ours / ".instructgen.json").is_file()
    InstructionDataset(ROWS * 3).save(ours)  # replaced in place
    assert len(InstructionDataset.load(ours)) == 3
    leftovers = [n for n in os.listdir(ours) if "tmp" in n or "old" in n or "save" in n]
    assert leftovers == []


def test_a_dataset_folder_saved_without_the_marker_is_still_ours(tmp_path: Path) -> None:
    """Folders written before the marker existed: metadata.json + data/, caches, run.json."""
    old = InstructionDataset(ROWS).save(tmp_path / "old")
    (old / ".instructgen.json").unlink()
    (old / ".instructgen.lock").unlink()
    (old / "run.json").write_text("{}")
    (old / "cache.sqlite3").write_bytes(b"")
    (old / "dataset.jsonl").write_text("{}\n")
    InstructionDataset(ROWS * 2).save(old)
    assert len(InstructionDataset.load(old)) == 2
    # an interrupted run of an earlier version left only its caches and run.json
    interrupted = tmp_path / "interrupted"
    interrupted.mkdir()
    (interrupted / "cache.sqlite3").write_bytes(b"")
    (interrupted / "cache.sqlite3-wal").write_bytes(b"")
    InstructionDataset(ROWS).save(interrupted)
    # but a lone file named like an export is not enough
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "dataset.csv").write_text("a,b\n")
    with pytest.raises(OutputFolderError):
        InstructionDataset(ROWS).save(lone)


# -- every way --out can be wrong: exit 2, one line ------------------------------------------


def test_out_an_existing_file_exits_2(tmp_path: Path) -> None:
    tasks = seed(tmp_path, 5)
    target = tmp_path / "out.txt"
    target.write_text("not a folder")
    r = subprocess.run(
        cli("generate", str(tasks), "--engine", "openai", "--out", str(target)),
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "existing file" in one_line_error(r)
    assert target.read_text() == "not a folder"


def test_out_under_a_read_only_folder_and_a_read_only_out_exit_2(tmp_path: Path) -> None:
    tasks = seed(tmp_path, 5)
    with WireServer() as server:
        server.responder = respond
        good = tmp_path / "good"
        r = subprocess.run(
            cli(
                "generate",
                str(tasks),
                "--out",
                str(good),
                "-n",
                "2",
                "--num-instructions",
                "3",
                server=server,
            ),
            env=env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        good.chmod(0o555)
        try:
            for out, words in ((locked / "new", "cannot create"), (good, "not writable")):
                r = subprocess.run(
                    without_dac_override(
                        cli("generate", str(tasks), "--out", str(out), "-n", "2", server=server)
                    ),
                    env=env(),
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                line = one_line_error(r)
                assert words in line and str(out) in line
            good.chmod(0o755)
            (good / "cache.sqlite3").chmod(0o444)
            r = subprocess.run(
                without_dac_override(
                    cli("generate", str(tasks), "--out", str(good), "-n", "2", server=server)
                ),
                env=env(),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert "read-only" in one_line_error(r)
        finally:
            locked.chmod(0o755)
            good.chmod(0o755)
            (good / "cache.sqlite3").chmod(0o644)


# -- one run per folder ----------------------------------------------------------------------


def test_a_second_run_on_the_same_out_exits_2_at_once_and_nothing_is_paid_twice(
    tmp_path: Path,
) -> None:
    tasks = seed(tmp_path)
    out = tmp_path / "out"
    args = ["-n", "20", "--num-instructions", "20", "--concurrency", "2"]
    with WireServer() as server:
        server.responder = respond
        server.latency = 0.05
        cmd = cli("generate", str(tasks), "--out", str(out), *args, server=server)
        first = subprocess.Popen(
            cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 60
        while not server.successes and time.monotonic() < deadline:
            time.sleep(0.02)
        started = time.monotonic()
        second = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=60)
        assert time.monotonic() - started < 15  # at once, not after the first one ends
        line = one_line_error(second)
        assert f"process {first.pid}" in line and "in use" in line and "generate" in line
        _, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
        assert server.paid_twice() == []
    assert len(InstructionDataset.load(out)) == 20


def test_the_lock_of_a_killed_run_is_taken_over(tmp_path: Path) -> None:
    tasks = seed(tmp_path)
    out = tmp_path / "out"
    args = ["-n", "10", "--num-instructions", "10", "--concurrency", "2"]
    with WireServer() as server:
        server.responder = respond
        server.latency = 0.05
        cmd = cli("generate", str(tasks), "--out", str(out), *args, server=server)
        first = subprocess.Popen(
            cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while sum(server.successes.values()) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert json.loads((out / ".instructgen.lock").read_text())["pid"] == first.pid
        server.latency = 0
        r = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert len(server.paid_twice()) <= 2  # at most what was in flight at kill -9


def test_a_cache_database_has_one_writing_process(tmp_path: Path) -> None:
    from instructgen.cache import Cache

    db = tmp_path / "c" / "responses.sqlite3"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom instructgen.cache import Cache\n"
            f"c = Cache({str(db)!r})\nprint('open', flush=True)\nsys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(FolderInUseError, match=f"process {holder.pid}"):
            Cache(db)
    finally:
        holder.communicate("", timeout=30)
    with Cache(db) as a, Cache(db) as b:  # one process: shared, not refused
        assert len(a) == len(b) == 0
    with Cache(db):  # released on close
        pass


def test_export_onto_a_folder_exits_2_and_keeps_the_folder(tmp_path: Path) -> None:
    saved = InstructionDataset(ROWS).save(tmp_path / "ds")
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "mine.txt").write_text("mine")
    r = subprocess.run(
        cli("export", str(saved), "--format", "jsonl", "--out", str(folder)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "is a folder" in one_line_error(r)
    assert sorted(os.listdir(folder)) == ["mine.txt"]
    r = subprocess.run(
        cli("report", str(saved), "--out", str(folder)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "is a folder" in one_line_error(r)
    assert sorted(os.listdir(folder)) == ["mine.txt"]


def test_the_lock_file_names_the_command_without_its_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from instructgen.outdir import hold_lock

    monkeypatch.setattr(
        sys,
        "argv",
        [
            *("instructgen", "generate", "t.jsonl", "-o", "api_key", "sk-live-0123456789abcdef"),
            *("--base-url", "https://user:hunter2@llm.example/v1", "--out", "out"),
        ],
    )
    with hold_lock(tmp_path / ".instructgen.lock", what="--out out"):
        text = (tmp_path / ".instructgen.lock").read_text()
    assert "0123456789abcdef" not in text and "hunter2" not in text
    assert "--out out" in json.loads(text)["command"]


def test_the_user_wide_cache_is_shared_between_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two programs using the library's default cache (two notebooks, a web service's
    workers) share it: SQLite keeps it consistent; only a run's own caches are exclusive."""
    from instructgen.cache import Cache
    from instructgen.engine_contract import Completion
    from instructgen.runs import default_cache_path

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    db = default_cache_path()
    assert db.parent == tmp_path / "xdg" / "instructgen"
    code = (
        "import sys\nfrom instructgen.cache import Cache\nfrom instructgen.runs import "
        "default_cache_path\nc = Cache(default_cache_path())\nprint('open', flush=True)\n"
        "key = sys.stdin.readline().strip()\nprint(c.get(key).texts, flush=True)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with Cache(db) as mine:  # not refused
            mine.put("k1", Completion(texts=("shared",)))
        out, _ = holder.communicate("k1\n", timeout=30)
        assert "('shared',)" in out  # written here, read there
    finally:
        if holder.poll() is None:
            holder.kill()
    assert not db.with_name(db.name + ".lock").exists()

"""Every documented command runs as written: the README's tour and set-up, `make demo`
(examples/demo.sh), the quickstart's commands (docs/index.md) and the Python snippets of both.

The code blocks are read from the files themselves, so a documented command that stops working
fails here. Each command runs in bash, as a user would type it, in a folder holding
``tasks.jsonl`` and ``./docs`` (the examples), with the keys set to fake ones and every engine
pointed at the local wire-format server through the variables the docs name
(``OPENAI_BASE_URL``, ``CO_API_URL``, ``ANTHROPIC_BASE_URL``). A line that cannot run here is
skipped only if it is listed in ``SKIPPED`` with the reason, or if it holds a placeholder
(``<HEAD_HOST>``), which the README says it is.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import pytest
from judge_responder import respond as judge_respond  # Self-Instruct's prompts, and ratings
from wire_server import WireServer, qa_responder

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
QUICKSTART = ROOT / "docs" / "index.md"

PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*>")
SKIPPED = {
    "make demo": "installs system packages and the .venv, then runs examples/demo.sh, which "
    "test_demo.py runs with a server (three reply styles) and this file without one",
    "make test": "the test command itself (ruff, mypy, this pytest suite, the docs build)",
    "export OPENAI_API_KEY=sk-...": "sets the key; here a fake key is set and the engines are "
    "pointed at the local server",
}
# Commands that need a contrib plugin: skipped, with the reason, where it is not installed.
NEEDS = {"--executor ray": "instructgen_ray", "--engine litellm": "instructgen_litellm"}
KEYS = {
    "OPENAI_API_KEY": "sk-readme-test",
    "CO_API_KEY": "co-readme-test",
    "ANTHROPIC_API_KEY": "sk-ant-readme-test",
}


@dataclass(frozen=True)
class Block:
    lang: str
    text: str


def code_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a markdown file, with their language."""
    found = re.findall(r"^```([\w-]*)[ \t]*\n(.*?)^```[ \t]*$", path.read_text(), re.M | re.S)
    return [Block(lang, text) for lang, text in found]


def commands(path: Path) -> list[str]:
    """The command lines of a file's bash blocks (continuations joined, blank lines and
    comment lines left out)."""
    out = []
    for block in code_blocks(path):
        if block.lang not in ("bash", "sh", "shell"):
            continue
        for line in block.text.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                out.append(line.strip())
    return out


def without_comment(line: str) -> str:
    return re.sub(r"\s+#\s.*$", "", line).strip()


def skip_reason(line: str) -> str | None:
    command = without_comment(line)
    if command in SKIPPED:
        return SKIPPED[command]
    if PLACEHOLDER.search(command):
        return f"placeholder {PLACEHOLDER.search(command).group(0)}: the README marks it"  # type: ignore[union-attr]
    for flag, module in NEEDS.items():
        if flag in command and find_spec(module) is None:
            return f"{module} is not installed (make installs contrib/)"
    return None


@pytest.fixture
def server() -> Iterator[WireServer]:
    with WireServer() as srv:
        srv.responder = qa_responder("mixed", fallback=judge_respond)
        yield srv


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A user's folder: their tasks.jsonl and documents (the examples)."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "examples" / "tasks.jsonl", work / "tasks.jsonl")
    shutil.copytree(ROOT / "examples" / "docs", work / "docs")
    return work


def user_env(tmp_path: Path, server: WireServer | None) -> dict[str, str]:
    """The environment of a user whose engines all talk to ``server``: an ``instructgen``
    command on PATH (this checkout's), fake keys, a cache folder of the test's own."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    exe = bin_dir / "instructgen"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m instructgen "$@"\n')
    exe.chmod(0o755)
    env = {
        k: v
        for k, v in os.environ.items()
        if not re.match(r"(OPENAI|CO|COHERE|AI21|ANTHROPIC|INSTRUCTGEN)_", k)
    }
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        XDG_CACHE_HOME=str(tmp_path / "user-cache"),
    )
    if server is not None:
        env.update(
            KEYS,
            OPENAI_BASE_URL=server.openai_base_url,
            CO_API_URL=server.cohere_base_url,
            ANTHROPIC_BASE_URL=server.anthropic_base_url,
        )
    return env


def run_line(line: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def run_commands(
    path: Path, server: WireServer, work: Path, env: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """Run every command of ``path`` in order; returns those run and those skipped (with
    their reasons)."""
    ran, skipped = [], {}
    for line in commands(path):
        why = skip_reason(line)
        if why is not None:
            skipped[without_comment(line)] = why
            continue
        before = len(server.calls)
        done = run_line(line, work, env)
        assert done.returncode == 0, f"{path.name}: {line}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, f"{line}\n{done.stderr}"
        if "--dry-run" in line:
            assert len(server.calls) == before, line  # a dry run sends nothing
        ran.append(line)
    return ran, skipped


def test_readme_tour_runs_as_written(server: WireServer, workspace: Path, tmp_path: Path) -> None:
    env = user_env(tmp_path, server)
    tour = commands(README)
    assert any("--engine litellm" in line for line in tour)
    ran, skipped = run_commands(README, server, workspace, env)
    assert set(skipped) <= {*SKIPPED, *[without_comment(x) for x in tour if PLACEHOLDER.search(x)]}
    assert "make demo" in skipped and "make test" in skipped
    ray_cluster = [s for s in skipped if "--ray-address" in s]
    assert ray_cluster and "<HEAD_HOST>" in ray_cluster[0]
    assert len(ran) >= 12, ran

    # what the tour says happened, happened
    run = json.loads((workspace / "my_dataset" / "run.json").read_text())
    assert run["examples"] == 100 and run["totals"]["invocations"] == 2  # ran, then resumed
    assert run["requests"]["requests_sent"] == 0  # the rerun came from the cache
    assert (workspace / "my_dataset" / "report.html").is_file()
    assert len(json.loads((workspace / "alpaca.json").read_text())) == 100
    providers = {c.provider for c in server.calls}
    assert {"openai", "cohere"} <= providers
    if find_spec("instructgen_litellm") is not None:
        assert "anthropic" in providers  # the LiteLLM line reached the local server
        claude = json.loads((workspace / "claude_dataset" / "run.json").read_text())
        assert claude["examples"] == 100
    if find_spec("instructgen_ray") is not None:
        ray = json.loads((workspace / "ray_dataset" / "run.json").read_text())
        assert ray["executor"] == "ray" and ray["question_answer_pairs"] > 0


def test_quickstart_commands_run_as_written(
    server: WireServer, workspace: Path, tmp_path: Path
) -> None:
    ran, skipped = run_commands(QUICKSTART, server, workspace, user_env(tmp_path, server))
    assert set(skipped) <= set(SKIPPED), skipped
    assert any(line.startswith("instructgen generate") for line in ran)
    assert any(line.startswith("instructgen report") for line in ran)


@pytest.mark.parametrize("doc", [README, QUICKSTART], ids=["README", "quickstart"])
def test_python_snippets_run_as_written(
    doc: Path, server: WireServer, workspace: Path, tmp_path: Path
) -> None:
    snippets = [b.text for b in code_blocks(doc) if b.lang == "python"]
    assert snippets
    env = user_env(tmp_path, server)
    for i, code in enumerate(snippets):
        script = tmp_path / f"snippet_{i}.py"
        # the snippet as written, then a look at what it made
        script.write_text(
            code
            + "\nimport json as _json\n"
            + "print(_json.dumps({k: len(v) for k, v in globals().items()"
            + " if type(v).__name__ == 'InstructionDataset'}))\n"
        )
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"{doc.name} snippet {i}:\n{code}\n{done.stderr}"
        sizes = json.loads(done.stdout.strip().splitlines()[-1])
        assert sizes and all(n > 0 for n in sizes.values()), sizes
    assert (workspace / "my_dataset" / "metadata.json").is_file()
    # the cache the README names, and nothing written outside the folder and the cache
    assert (tmp_path / "user-cache" / "instructgen" / "responses.sqlite3").is_file()


SKIPPED_LINES = [
    (doc.name, without_comment(line), why)
    for doc in (README, QUICKSTART)
    for line in commands(doc)
    if (why := skip_reason(line)) is not None
]


@pytest.mark.parametrize(
    ("doc", "line", "why"), SKIPPED_LINES, ids=[f"{d}: {c}" for d, c, _ in SKIPPED_LINES]
)
def test_documented_lines_not_run_here(doc: str, line: str, why: str) -> None:
    """Each documented line the tests above do not run, listed with its reason (-ra shows
    them)."""
    pytest.skip(f"{doc}: `{line}`: {why}")


def test_make_demo_runs_the_demo_script() -> None:
    """`make demo` is the set-up, then examples/demo.sh, which the tests below run."""
    makefile = (ROOT / "Makefile").read_text()
    target = re.search(r"^demo:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert target is not None and "bash examples/demo.sh" in target.group(1)


def test_demo_without_a_key_runs_what_needs_no_engine(tmp_path: Path) -> None:
    """The branch of examples/demo.sh for a user with neither a key nor a server (the branch
    with a server runs in test_demo.py)."""
    env = user_env(tmp_path, None)
    env["OUT"] = str(tmp_path / "demo-out")
    done = subprocess.run(
        ["bash", str(ROOT / "examples" / "demo.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("No OPENAI_API_KEY or OPENAI_BASE_URL set")
    assert "dry run, nothing sent" in done.stdout
    assert "4 of 4 files read" in done.stdout
    assert not (tmp_path / "demo-out").exists()

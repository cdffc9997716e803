"""The template's third-party method, installed into a fresh virtual environment, is found
through its entry point, listed by `instructgen methods` and generates a dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import TEST_KEY
from wire_server import WireCall, WireServer

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "contrib" / "instructgen-plugin-template"


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv holding only the template; instructgen and its dependencies are this
    environment's (a .pth file), the core and plugins this checkout's (PYTHONPATH)."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    py = root / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "outer-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            str(TEMPLATE),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return root


def run(venv: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "core"), str(ROOT / "plugins")]),
        **env,
    }
    return subprocess.run(
        [str(venv / "bin" / "python"), "-m", "instructgen", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_template_method_is_listed_from_its_entry_point(venv: Path) -> None:
    r = run(venv, "methods", "--json")
    assert r.returncode == 0, r.stderr
    methods = {m["name"]: m for m in json.loads(r.stdout)["methods"]}
    m = methods["answer-instructions"]
    assert m["plugin"] == "hello-methods" and m["roles"] == ["answers"]
    style = next(o for o in m["options"] if o["name"] == "style")
    assert style["choices"] == ["concise", "detailed"]


def test_the_template_method_generates_through_the_entry_point(venv: Path, tmp_path: Path) -> None:
    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        "".join(
            json.dumps({"instruction": f"Name a use of the number {i}."}) + "\n" for i in range(12)
        )
    )

    def answer(call: WireCall) -> str:
        assert "thoroughly, step by step" in call.prompt  # -m style detailed reached it
        return "Counting sheep: " + call.prompt.rsplit("number ", 1)[1].split(".")[0]

    with WireServer() as server:
        server.responder = answer
        r = run(
            venv,
            "generate",
            str(questions),
            "--method",
            "answer-instructions",
            "-m",
            "style",
            "detailed",
            "--engine",
            "openai-completions",
            "--base-url",
            server.openai_base_url,
            "-n",
            "10",
            "--out",
            str(tmp_path / "out"),
            "--format",
            "jsonl",
            "--json",
            OPENAI_API_KEY=TEST_KEY,
        )
        assert r.returncode == 0, r.stderr
        assert len(server.prompt_calls) == 10
    rows = [json.loads(x) for x in (tmp_path / "out" / "dataset.jsonl").open()]
    assert [row["target"] for row in rows] == [f"Counting sheep: {i}" for i in range(10)]
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert report["method"] == "answer-instructions" and report["input"]["kind"] == "instructions"
    bad = run(
        venv,
        "generate",
        str(questions),
        "--method",
        "answer-instructions",
        "-m",
        "style",
        "loud",
        "--engine",
        "openai",
        "--dry-run",
    )
    assert bad.returncode == 2 and "'loud' is not one of concise, detailed" in bad.stderr

"""Golden datasets of the two original methods, made through the CLI against the deterministic
responder, and what of run.json is deterministic.

``python tests/method_goldens.py DIR`` writes the goldens into DIR (``tests/fixtures/goldens``
holds the ones captured from the code before methods became plugins); the test
``test_methods_golden.py`` makes the same runs and compares byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from conftest import SHARED, TEST_KEY
from selfinstruct_responder import respond
from wire_server import WireServer

SEED_FILE = SHARED / "data" / "seed_tasks.jsonl"

# A small folder of documents, written by the test itself so the goldens never move.
DOCUMENTS = {
    "notes/garden.md": "# Garden\n\n" + "Tomatoes need sun and water every day. " * 40,
    "notes/bridge.txt": "The old ferry bridge opened in 1911. " * 120,
    "report.txt": "Quarterly budget review for the coastal library. " * 60,
}

# name -> (command, arguments after the input); every case exports jsonl next to the dataset
CASES: dict[str, tuple[str, list[str]]] = {
    "selfinstruct-chat": (
        "generate",
        ["--engine", "openai", "-n", "30", "--num-instructions", "25", "--seed", "7"],
    ),
    "selfinstruct-completions": (
        "generate",
        [
            "--engine",
            "openai-completions",
            "-n",
            "12",
            "--num-instructions",
            "10",
            "--seed",
            "3",
            "--window",
            "4",
            # one prompt a request, as the code that made the golden sent them (the dataset
            # with prompt lists is compared with the golden too: test_methods_golden.py)
            "--prompts-per-request",
            "1",
        ],
    ),
    "selfinstruct-nofilter": (
        "generate",
        ["--engine", "openai", "-n", "10", "--num-instructions", "8", "--no-filter", "rouge"],
    ),
    "document-qa": (
        "from-dir",
        ["--engine", "openai", "--samples-per-chunk", "3", "--chunk-size", "1500"],
    ),
    "document-qa-selfinstruct": (
        "from-dir",
        [
            "--engine",
            "openai",
            "--samples-per-chunk",
            "2",
            "--chunk-size",
            "2000",
            "--self-instruct",
            "-n",
            "8",
            "--num-instructions",
            "6",
        ],
    ),
}

ALPACA_CASES: dict[str, list[str]] = {
    "alpaca-chat": ["--engine", "openai", "-n", "200", "--seed", "42"],
    "alpaca-completions": [
        *("--engine", "openai-completions", "-n", "150", "--seed", "3"),
        *("-m", "window", "8"),
    ],
    "alpaca-unicode": [
        *("--engine", "openai", "-n", "300", "--seed", "5"),
        *("--rouge-tokenizer", "unicode"),
    ],
    "alpaca-5000": ["--engine", "openai", "-n", "5000", "--seed", "11"],
}
"""Alpaca runs whose datasets must not move (``tests/fixtures/goldens/alpaca.json``: sha256 and
row count of each exported dataset, and the parts of run.json that depend only on the replies
in request order). Which requests are *issued* beyond those used depends on when answers
arrive, so ``requests_issued`` and the request counts are not compared."""
CASES.update(
    {name: ("generate", ["--method", "alpaca", *args]) for name, args in ALPACA_CASES.items()}
)

ALPACA_REPORT_KEYS = (
    "examples",
    "requests_used",
    "gave_up",
    "blocks_parsed",
    "blocks_unparsed",
    "blocks_dropped_cut",
    "duplicate_in_reply",
    "failed_requests",
    "filter_drops",
    "filter_drop_examples",
)

_VOLATILE = {"timings", "output", "root", "resolved", "seconds", "workers"}


def deterministic(report: Any) -> Any:
    """run.json without what changes from run to run: timings, paths, elapsed seconds."""
    if isinstance(report, dict):
        return {
            k: deterministic(v)
            for k, v in sorted(report.items())
            if k not in _VOLATILE and not k.endswith("_s") and k != "path"
        }
    if isinstance(report, list):
        return [deterministic(v) for v in report]
    if isinstance(report, float):
        return round(report, 4)  # a sum of costs in completion order differs in the last digit
    return report


def make_documents(folder: Path) -> Path:
    for rel, text in DOCUMENTS.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def run_case(name: str, work: Path, extra: list[str] | None = None) -> dict[str, Any]:
    """Run case ``name`` in ``work`` through the CLI; returns the exported jsonl bytes' text,
    its sha256, the deterministic run.json and the CLI's exit code."""
    from click.testing import CliRunner

    from instructgen.cli import cli

    command, args = CASES[name]
    work.mkdir(parents=True, exist_ok=True)
    if command == "generate":
        source = work / "seed_tasks.jsonl"
        shutil.copy(SEED_FILE, source)
    else:
        source = make_documents(work / "docs")
    out = work / "out"
    with WireServer() as server:
        server.responder = respond
        r = CliRunner().invoke(
            cli,
            [
                command,
                str(source),
                *args,
                *(extra or []),
                "--base-url",
                server.openai_base_url,
                "--out",
                str(out),
                "--format",
                "jsonl",
                "--json",
            ],
            env={"OPENAI_API_KEY": TEST_KEY},
        )
    if r.exit_code != 0:
        raise AssertionError(f"{name}: exit {r.exit_code}: {r.stderr or r.output}")
    data = (out / "dataset.jsonl").read_bytes()
    report = json.loads((out / "run.json").read_text(encoding="utf-8"))
    return {
        "dataset": data,
        "sha256": hashlib.sha256(data).hexdigest(),
        "report": deterministic(report),
    }


def alpaca_summary(got: dict[str, Any]) -> dict[str, Any]:
    """What an alpaca golden holds: the dataset's sha256 and rows, run.json's deterministic keys."""
    return {
        "sha256": got["sha256"],
        "rows": len(got["dataset"].splitlines()),
        "report": {k: got["report"][k] for k in ALPACA_REPORT_KEYS},
    }


def write_goldens(folder: Path) -> None:
    import tempfile

    folder.mkdir(parents=True, exist_ok=True)
    alpaca: dict[str, Any] = {}
    for name in CASES:
        if name in ALPACA_CASES:
            with tempfile.TemporaryDirectory() as tmp:
                alpaca[name] = alpaca_summary(run_case(name, Path(tmp)))
            print(name, alpaca[name]["sha256"], alpaca[name]["rows"], "rows")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            got = run_case(name, Path(tmp))
        (folder / f"{name}.jsonl").write_bytes(got["dataset"])
        (folder / f"{name}.run.json").write_text(
            json.dumps(got["report"], indent=1, sort_keys=True) + "\n", encoding="utf-8"
        )
        print(name, got["sha256"], len(got["dataset"].splitlines()), "rows")
    (folder / "alpaca.json").write_text(
        json.dumps(alpaca, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    write_goldens(Path(sys.argv[1]))

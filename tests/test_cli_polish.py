"""Small things people meet every day: money, --debug anywhere, column access, the dry run's
labels."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SHARED

from instructgen import InstructionDataset
from instructgen.cli import cli
from instructgen.money import format_usd


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (0.001, "$0.001"),
        (0.005, "$0.005"),
        (0.0123, "$0.012"),
        (0.25, "$0.25"),
        (1.283, "$1.28"),
        (1234.5, "$1,234.50"),
        (0, "$0.00"),
    ],
)
def test_money_keeps_its_significant_digits(amount: float, text: str) -> None:
    assert format_usd(amount) == text


def test_debug_is_accepted_after_the_sub_command(tmp_path: Path) -> None:
    bad = tmp_path / "tasks.jsonl"
    bad.write_text("{not json\n")
    r = CliRunner().invoke(cli, ["validate", str(bad), "--debug"])
    assert r.exit_code == 2, r.output
    assert "no such option" not in r.output


def test_the_dry_run_labels_the_instance_prompt_excerpt(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    r = CliRunner().invoke(cli, ["generate", str(tasks), "--engine", "openai", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "end of the first instance prompt" not in r.stdout
    assert "the first instance prompt, its last 300 characters" in r.stdout


def test_columns_slices_and_pandas() -> None:
    ds = InstructionDataset(
        [
            {"instruction": "Name a colour.", "target": "Blue"},
            {"instruction": "Add 2 and 2.", "text": "", "target": "4"},
        ]
    )
    assert ds["instruction"] == ["Name a colour.", "Add 2 and 2."]
    assert ds[1]["target"] == "4"
    assert len(ds[:1]) == 1 and isinstance(ds[:1], InstructionDataset)
    with pytest.raises(KeyError, match="no column 'output'"):
        ds["output"]
    frame = ds.to_pandas()
    assert list(frame.columns) == ds.column_names and frame["target"].tolist() == ["Blue", "4"]
    assert ds.to_hf()["instruction"] == ds["instruction"]
    assert json.loads(json.dumps(ds[0]))["instruction"] == "Name a colour."


def test_filters_are_chosen_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import TEST_KEY
    from selfinstruct_responder import respond
    from wire_server import WireServer

    tasks = tmp_path / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    base = ["generate", str(tasks), "--engine", "openai", "-n", "10", "--num-instructions", "10"]
    r = CliRunner().invoke(cli, [*base, "--no-filter", "nonesuch", "--dry-run"])
    assert r.exit_code == 2 and "unknown filter 'nonesuch'" in r.output
    runs = {}
    for name, extra in {"all": [], "no-rouge": ["--no-filter", "rouge-l"]}.items():
        with WireServer() as server:
            server.responder = respond
            out = tmp_path / name
            r = CliRunner().invoke(
                cli, [*base, "--base-url", server.openai_base_url, "--out", str(out), *extra]
            )
            assert r.exit_code == 0, r.output
        runs[name] = json.loads((out / "run.json").read_text())["filters"]
    assert "rouge" in runs["all"] and "rouge" not in runs["no-rouge"]


def test_plugins_lists_aliases() -> None:
    r = CliRunner().invoke(cli, ["plugins"])
    assert r.exit_code == 0, r.output
    assert "engines: ai21 (j2-grande)" in r.output
    r = CliRunner().invoke(cli, ["plugins", "--json"])
    rows = {row["name"]: row for row in json.loads(r.output)["plugins"]}
    assert rows["cohere"]["aliases"] == {"cohere": ["medium"]}


def test_the_missing_key_message_fits_the_engine() -> None:
    import instructgen
    from instructgen import Completion, Engine, MissingKeyError, Request

    class Keyed(Engine):
        name = "keyed"
        key_env_vars = ("KEYED_API_KEY",)

        async def acomplete(self, request: Request) -> Completion:
            return Completion(("x",))

    with pytest.raises(MissingKeyError) as err:
        Keyed()
    assert str(err.value) == (
        "engine 'keyed' needs an API key: set KEYED_API_KEY or pass api_key=..."
    )
    with pytest.raises(MissingKeyError, match="OPENAI_BASE_URL"):
        instructgen.engine("openai")


def test_engine_options_reach_the_wire_and_the_cache_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import TEST_KEY
    from selfinstruct_responder import respond
    from wire_server import WireServer

    tasks = tmp_path / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    base = ["generate", str(tasks), "--engine", "openai", "-n", "5", "--num-instructions", "5"]
    r = CliRunner().invoke(cli, [*base, "-o", "colour", "blue", "--dry-run"])
    assert r.exit_code == 2, r.output
    assert "engine 'openai' has no option 'colour'; its options: logit_bias" in r.output
    r = CliRunner().invoke(cli, [*base, "-o", "logit_bias", "{not json", "--dry-run"])
    assert r.exit_code == 2 and "expected dict (JSON)" in r.output
    out = tmp_path / "out"
    with WireServer() as server:
        server.responder = respond
        run = [*base, "--base-url", server.openai_base_url, "--out", str(out)]
        assert CliRunner().invoke(cli, run).exit_code == 0
        first = len(server.calls)
        assert CliRunner().invoke(cli, run).exit_code == 0
        assert len(server.calls) == first  # the same command: all from the cache
        r = CliRunner().invoke(cli, [*run, "-o", "service_tier", "flex"])
        assert r.exit_code == 0, r.output
        assert len(server.calls) > first  # another option: other answers
        assert server.calls[-1].body["service_tier"] == "flex"


def test_the_dry_run_gives_an_expected_cost_below_the_bound(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    r = CliRunner().invoke(
        cli,
        [
            "generate",
            str(tasks),
            "--engine",
            "openai",
            "-n",
            "100",
            "--num-instructions",
            "200",
            "--dry-run",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert 0 < d["expected_cost_usd"] < d["max_cost_usd"]
    assert d["expected_prompt_tokens"] < d["prompt_tokens"]
    assert d["expected_completion_tokens"] < d["max_completion_tokens"]
    text = (
        CliRunner().invoke(cli, ["generate", str(tasks), "--engine", "openai", "--dry-run"]).output
    )
    assert "cost expected $" in text and ", at most $" in text


def test_extract_says_how_many_files_the_globs_left_out(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("a.md", "b.md", "c.txt", "d.txt"):
        (docs / name).write_text("Some text about solar panels. " * 20, encoding="utf-8")
    r = CliRunner().invoke(cli, ["extract", str(docs), "--include", "*.pdf", "--workers", "0"])
    assert r.exit_code == 0, r.output
    assert "0 of 0 files read" in r.stdout and "4 left out by --include/--exclude" in r.stdout
    r = CliRunner().invoke(
        cli, ["extract", str(docs), "--include", "*.md", "--workers", "0", "--json"]
    )
    assert json.loads(r.stdout)["summary"]["left_out_by_globs"] == 2


def test_the_command_line_says_which_variable_holds_the_key(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    r = CliRunner().invoke(cli, ["generate", str(tasks), "--engine", "openai"])
    assert r.exit_code == 2
    assert r.stderr.strip() == (
        "error: engine 'openai' needs an API key: set the environment variable OPENAI_API_KEY, "
        "e.g. export OPENAI_API_KEY=...; a local OpenAI-compatible server such as Ollama, vLLM "
        "or llama.cpp needs none: set OPENAI_BASE_URL to its URL instead"
    )
    assert "api_key=" not in r.output
    r = CliRunner().invoke(cli, ["from-dir", str(tmp_path), "--engine", "medium"])
    assert r.exit_code == 2 and "api_key=" not in r.output
    assert "set the environment variable CO_API_KEY or COHERE_API_KEY" in r.stderr
    assert not (tmp_path / f"{tmp_path.name}-dataset").exists()


def test_an_unknown_engine_lists_the_aliases_it_accepts(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    r = CliRunner().invoke(cli, ["generate", str(tasks), "--engine", "gpt4", "--dry-run"])
    assert r.exit_code == 2
    assert "error: unknown engine 'gpt4'; known: ai21 (or j2-grande), cohere (or medium), " in (
        r.stderr
    )
    assert "openai (or chatgpt), openai-completions (or davinci)" in r.stderr


@pytest.mark.parametrize("command", ["generate", "from-dir"])
def test_help_says_each_thing_once(command: str) -> None:
    r = CliRunner().invoke(cli, [command, "--help"], terminal_width=100)
    assert r.exit_code == 0
    assert "from-dir: with" not in r.output
    lines = [line.strip() for line in r.output.splitlines() if line.strip()]
    repeated = {line for line in lines if lines.count(line) > 1 and len(line) > 20}
    assert not repeated, repeated
    if command == "from-dir":  # the Self-Instruct options in a section of their own, once
        options, _, self_instruct = r.output.partition("only with --self-instruct):")
        assert r.output.count("--self-instruct") == 2
        for flag in ("--num-instructions-for-finetuning", "--window", "--no-filter"):
            assert flag in self_instruct and flag not in options

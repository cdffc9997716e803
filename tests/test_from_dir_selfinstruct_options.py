"""`from-dir --self-instruct` takes generate's Self-Instruct options: --filter / --no-filter
choose the instruction filters, --window sets the bootstrap window; both reach the run (streamed
or extract-then-generate) and run.json; without --self-instruct they are refused. End to end
against the wire-format server with the real OpenAI SDK."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import SHARED, TEST_KEY
from selfinstruct_responder import respond
from wire_server import WireServer

import instructgen
from instructgen import Filter, FilterRegistry, InstructionDataset, SelfInstructOptions, hookimpl
from instructgen.cli import cli
from instructgen.errors import ConfigError, UnknownNameError
from instructgen.runs import LocalExecutor

# The seed tasks are the documents' question/answer pairs; the responder copies a listed
# instruction now and then (a near-duplicate ROUGE must drop), so a copied seed question in the
# dataset means ROUGE did not run.
SEED_QUESTION = re.compile(r"^What does part \d+ of [ab]\.txt say about point \d+\?$")


class NoHowFilter(Filter):
    """A plugin's filter that is off by default: drops instructions asking "how"."""

    name = "no-how"

    def check(self, item: str) -> str | None:
        return "asks how" if " how " in item else None


class HowPlugin:
    @hookimpl
    def register_filters(self, registry: FilterRegistry) -> None:
        registry.add(NoHowFilter, aliases=("nohow",), default=False)


@pytest.fixture
def how_plugin() -> Iterator[str]:
    name = instructgen.register_plugin(HowPlugin(), name="no-how-test")
    try:
        yield name
    finally:
        instructgen.unregister_plugin(name)


@pytest.fixture
def docs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Lighthouses guide ships along the coast at night. " * 20)
    (folder / "b.txt").write_text("Bakers proof dough overnight for a slower rise. " * 20)
    return folder


@pytest.fixture
def server() -> Iterator[WireServer]:
    with WireServer() as s:
        s.responder = respond
        yield s


def from_dir(docs: Path, server: WireServer, out: Path, *more: str) -> Result:
    return CliRunner().invoke(
        cli,
        [
            *("from-dir", str(docs), "--engine", "openai", "--base-url", server.openai_base_url),
            *("--out", str(out), "--samples-per-chunk", "3", *more),
        ],
    )


SIZE = ("--self-instruct", "-n", "20", "--num-instructions", "20")


def run(docs: Path, server: WireServer, out: Path, *more: str) -> dict[str, Any]:
    """A from-dir Self-Instruct run; its dataset's instructions and run.json's Self-Instruct
    section."""
    r = from_dir(docs, server, out, *SIZE, *more)
    assert r.exit_code == 0, r.output
    report = json.loads((out / "run.json").read_text())["self_instruct"]
    return {"rows": list(InstructionDataset.load(out)), **report}


def test_no_filter_rouge_lets_a_near_duplicate_through(
    docs: Path, server: WireServer, tmp_path: Path
) -> None:
    default = run(docs, server, tmp_path / "default")
    no_rouge = run(docs, server, tmp_path / "no-rouge", "--no-filter", "rouge-l")  # an alias
    assert "rouge" in default["filters"] and default["filter_drops"]["rouge"] > 0
    assert not any(SEED_QUESTION.match(r["instruction"]) for r in default["rows"])
    assert no_rouge["filters"] == [f for f in default["filters"] if f != "rouge"]
    assert "rouge" not in no_rouge["filter_drops"]
    copied = [r["instruction"] for r in no_rouge["rows"] if SEED_QUESTION.match(r["instruction"])]
    assert copied, [r["instruction"] for r in no_rouge["rows"]]


def test_filter_adds_a_filter_that_is_off_by_default(
    docs: Path, server: WireServer, tmp_path: Path, how_plugin: str
) -> None:
    default = run(docs, server, tmp_path / "default")
    assert "no-how" not in default["filters"]
    assert any(" how " in r["instruction"] for r in default["rows"])
    chosen = run(docs, server, tmp_path / "no-how", "--filter", "nohow", "--no-filter", "blacklist")
    assert chosen["filters"] == [
        *(f for f in default["filters"] if f != "blacklist"),
        "no-how",
    ]
    assert chosen["filter_drops"]["no-how"] > 0 and "blacklist" not in chosen["filter_drops"]
    assert chosen["rows"] and not any(" how " in r["instruction"] for r in chosen["rows"])


def test_window_reaches_the_bootstrap_and_is_recorded(
    docs: Path, server: WireServer, tmp_path: Path
) -> None:
    default = run(docs, server, tmp_path / "default", "--concurrency", "1")
    one = run(docs, server, tmp_path / "w1-c1", "--window", "1", "--concurrency", "1")
    one_wide = run(docs, server, tmp_path / "w1-c8", "--window", "1", "--concurrency", "8")
    assert default["requested"]["window"] == 64
    assert one["requested"]["window"] == one_wide["requested"]["window"] == 1
    # the window is part of what the dataset depends on; the concurrency is not
    assert one["rows"] == one_wide["rows"]
    assert one["rows"] != default["rows"]


def test_extract_then_generate_runs_with_the_same_options(
    docs: Path, server: WireServer, tmp_path: Path
) -> None:
    class ExtractThenGenerate(LocalExecutor):
        """The local executor without streaming (as the Ray executor runs): extract every
        file, then generate."""

        streams = False

    streamed = run(docs, server, tmp_path / "cli", "--no-filter", "rouge", "--window", "2")
    engine = instructgen.engine("openai", base_url=server.openai_base_url)
    ds = InstructionDataset.generate_dataset_from_dir(
        docs,
        engine,
        use_self_instruct=True,
        num_samples_per_chunk=3,
        num_instructions=20,
        num_instructions_for_finetuning=20,
        out=tmp_path / "api",
        executor=ExtractThenGenerate(),
        filters=["length", "blacklist", "write-a-program", "leading-char"],
        self_instruct=SelfInstructOptions(window=2),
    )
    report = ds.run_report["self_instruct"]
    assert report["filters"] == streamed["filters"]
    assert report["requested"]["window"] == 2 and "rouge" not in report["filter_drops"]
    assert list(ds) == streamed["rows"]


def test_prompt_size_and_filter_settings_reach_the_run(
    docs: Path, server: WireServer, tmp_path: Path
) -> None:
    run(docs, server, tmp_path / "default")
    listed = [re.findall(r"^\d+\. ", c.prompt, re.M) for c in server.calls if is_bootstrap(c)]
    # 6 pairs (2 files x 3 samples) are the seed tasks: all 6 listed, 8 being the default
    assert listed and all(len(items) == 6 for items in listed)
    server.calls.clear()
    three = run(
        docs,
        server,
        tmp_path / "three",
        *("--num-prompt-instructions", "3", "--rouge-tokenizer", "unicode", "--allow-non-ascii"),
    )
    listed = [re.findall(r"^\d+\. ", c.prompt, re.M) for c in server.calls if is_bootstrap(c)]
    assert listed and all(len(items) == 3 for items in listed)
    assert three["requested"]["num_prompt_instructions"] == 3


def is_bootstrap(call: Any) -> bool:
    return "Come up with a series of tasks" in call.prompt


@pytest.mark.parametrize(
    "args",
    [
        ("--window", "8"),
        ("--no-filter", "rouge"),
        ("--filter", "rouge", "--window", "8"),
        ("--num-instructions", "8"),
        ("-n", "8"),
        ("--num-prompt-instructions", "3"),
        ("--rouge-tokenizer", "unicode"),
    ],
)
def test_self_instruct_options_without_self_instruct_exit_2(
    docs: Path, server: WireServer, tmp_path: Path, args: tuple[str, ...]
) -> None:
    r = from_dir(docs, server, tmp_path / "out", *args)
    assert r.exit_code == 2, r.output
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "only with --self-instruct" in lines[0], r.stderr
    for flag in args[::2]:
        assert flag in lines[0]
    assert server.calls == [] and not (tmp_path / "out").exists()
    r = from_dir(docs, server, tmp_path / "out", *args, "--dry-run")  # a dry run too
    assert r.exit_code == 2 and "only with --self-instruct" in r.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--window", "0"), "Invalid value for '--window': 0 is not in the range x>=1."),
        (("--window", "-4"), "Invalid value for '--window': -4 is not in the range x>=1."),
        (
            ("--no-filter", "nonesuch"),
            "error: unknown filter 'nonesuch'; known: blacklist, leading-char, length, "
            "llm-judge, rouge (or rouge-l), write-a-program",
        ),
        (("--filter", "nonesuch"), "error: unknown filter 'nonesuch'"),
    ],
)
def test_bad_values_exit_2_as_generate_does(
    docs: Path, server: WireServer, tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    tasks = tmp_path / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    generate = CliRunner().invoke(cli, ["generate", str(tasks), "--engine", "openai", *args])
    r = from_dir(docs, server, tmp_path / "out", *SIZE, *args)
    assert r.exit_code == generate.exit_code == 2, r.output
    assert says in r.stderr and says in generate.stderr
    assert server.calls == [] and not (tmp_path / "out").exists()


def test_the_python_api_refuses_what_it_would_not_use(
    docs: Path, server: WireServer, tmp_path: Path
) -> None:
    engine = instructgen.engine("openai", base_url=server.openai_base_url)
    with pytest.raises(
        ConfigError, match=r"^filters: used only with use_self_instruct=True; .* leave it out$"
    ):
        InstructionDataset.generate_dataset_from_dir(docs, engine, filters=["rouge"], cache=False)
    with pytest.raises(
        ConfigError, match=r"^self_instruct, filter_options: used only with .* leave them out$"
    ):
        InstructionDataset.generate_dataset_from_dir(
            docs,
            engine,
            self_instruct=SelfInstructOptions(window=2),
            filter_options={"rouge": {"threshold": 0.5}},
            cache=False,
        )
    with pytest.raises(UnknownNameError, match="unknown filter 'nonesuch'"):
        InstructionDataset.generate_dataset_from_dir(
            docs, engine, use_self_instruct=True, filters=["nonesuch"], out=tmp_path / "o"
        )
    assert server.calls == [] and not (tmp_path / "o").exists()


def test_the_ray_executor_runs_with_the_same_options(
    docs: Path, server: WireServer, tmp_path: Path
) -> None:
    pytest.importorskip("instructgen_ray", reason="install contrib/instructgen-ray (make does)")
    options = ("--no-filter", "rouge", "--window", "2")
    local = run(docs, server, tmp_path / "local", *options)
    ray = run(
        docs,
        server,
        tmp_path / "ray",
        *options,
        *("--executor", "ray", "--executor-workers", "1"),
    )
    assert json.loads((tmp_path / "ray" / "run.json").read_text())["executor"] == "ray"
    assert ray["filters"] == local["filters"] and "rouge" not in ray["filters"]
    assert ray["requested"]["window"] == local["requested"]["window"] == 2
    assert ray["rows"] == local["rows"]


def test_the_dry_run_counts_the_self_instruct_stage(docs: Path, tmp_path: Path) -> None:
    base = ["from-dir", str(docs), "--engine", "openai", "--samples-per-chunk", "3", "--dry-run"]
    plain = json.loads(CliRunner().invoke(cli, [*base, "--json"]).output)
    assert "self_instruct" not in plain and "total" not in plain
    r = CliRunner().invoke(cli, [*base, *SIZE, "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    si = d["self_instruct"]
    assert si["requests"]["classify"] == si["requests"]["instances"] == 20
    assert si["requests"]["bootstrap"] >= 1
    assert 0 < si["expected_cost_usd"] < si["max_cost_usd"]
    assert d["total"]["requests"] == d["requests"] + si["requests"]["total"]
    assert d["total"]["max_cost_usd"] == pytest.approx(
        d["max_cost_usd"] + si["max_cost_usd"], abs=2e-4
    )
    text = CliRunner().invoke(cli, [*base, *SIZE]).output
    assert "then Self-Instruct on the pairs: about " in text and "expected $" in text


def _stage(prompt: str) -> str:
    if "Is it classification?" in prompt:
        return "classify"
    if "Come up with examples for the following tasks" in prompt or "generate an input" in prompt:
        return "instances"
    return "other"


def test_response_model_takes_the_self_instruct_instances(
    docs: Path, server: WireServer, tmp_path: Path
) -> None:
    out = tmp_path / "split"
    r = from_dir(docs, server, out, *SIZE, "--response-model", "gpt-4o", "--response-rpm", "6000")
    assert r.exit_code == 0, r.output
    seen = {(c.body["model"], _stage(c.prompt)) for c in server.requests}
    assert {m for m, s in seen if s == "instances"} == {"gpt-4o"}
    assert {m for m, s in seen if s != "instances"} == {"gpt-4o-mini"}  # questions, bootstrap
    by = json.loads((out / "run.json").read_text())["self_instruct"]["requests"]["by_engine"]
    assert {e["model"]: e["roles"] for e in by} == {
        "gpt-4o-mini": ["instructions"],
        "gpt-4o": ["answers"],
    }


def test_role_flags_from_dir_cannot_use_exit_2(
    docs: Path, server: WireServer, tmp_path: Path
) -> None:
    r = from_dir(docs, server, tmp_path / "o1", "--response-model", "gpt-4o")
    assert r.exit_code == 2
    assert "--response-model: document Q/A asks for questions and answers in one request" in (
        r.output
    )
    r = from_dir(docs, server, tmp_path / "o2", *SIZE, "--filter", "llm-judge")
    assert r.exit_code == 2, r.output
    assert "generate DIR --method document-qa --filter llm-judge" in r.output
    assert not server.requests and not (tmp_path / "o1").exists()

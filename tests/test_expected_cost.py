"""The dry run's expected cost against what the same run costs on a server billing as OpenAI
does, and the OpenAI engines' offline tokenizer."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SHARED, TEST_KEY
from wire_server import WireCall, WireServer, openai_tokenizer

from instructgen.cli import cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

pytest.importorskip("tiktoken")
pytest.importorskip("litellm")  # the vocabularies it ships are the only ones offline here

O200K = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"


def _plausible(call: WireCall) -> str:
    import _selfinstruct_replies

    return _selfinstruct_replies.reply(call.prompt, call.kind == "chat")


@pytest.mark.parametrize("size", [30, 200])
def test_the_expected_cost_is_within_a_quarter_of_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    tasks = tmp_path / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    args = ["generate", str(tasks), "--engine", "openai", "-n", str(size)]
    args += ["--num-instructions", str(size), "--json"]
    dry = CliRunner().invoke(cli, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    expected = json.loads(dry.output)
    assert expected["prompt_tokens_counted"] == "with the model's tokenizer"

    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    with WireServer() as server:
        server.responder = _plausible
        server.tokenizer = openai_tokenizer()
        out = tmp_path / "out"
        run = [*args, "--base-url", server.openai_base_url, "--out", str(out)]
        r = CliRunner().invoke(cli, run)
        assert r.exit_code == 0, r.output
    used = json.loads((out / "run.json").read_text())["requests"]
    assert used["requests_cached"] == 0
    ratio = expected["expected_cost_usd"] / used["cost_usd"]
    assert 0.75 <= ratio <= 1.25, (ratio, expected, used)
    # Prompts are counted with the model's own tokenizer: within a few percent of the bill.
    prompt_ratio = expected["expected_prompt_tokens"] / used["prompt_tokens"]
    assert 0.95 <= prompt_ratio <= 1.05, prompt_ratio
    # The upper bound stays an upper bound.
    assert expected["max_cost_usd"] >= used["cost_usd"]


def test_the_tokenizer_counts_as_tiktoken_does() -> None:
    from instructgen_openai import OpenAIChatEngine, OpenAICompletionsEngine

    count = OpenAIChatEngine.token_counter()
    assert count is not None
    reference = openai_tokenizer("gpt-4o-mini")
    text = "Come up with a series of tasks:\n1. Summarise the Ēstonian news. <|endoftext|>"
    assert count(text) == reference(text)
    legacy = OpenAICompletionsEngine.token_counter()
    assert legacy is not None
    assert legacy(text) == openai_tokenizer("gpt-3.5-turbo-instruct")(text)
    assert OpenAIChatEngine.token_counter("my-local-llama") is None  # tiktoken knows no such


def test_a_corrupt_vocabulary_is_neither_used_nor_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from instructgen.tokenizers import vocabulary_file

    bad = tmp_path / hashlib.sha1(O200K.encode()).hexdigest()
    bad.write_bytes(b"not a vocabulary\n")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    found = vocabulary_file("o200k_base")
    assert found is not None and found != bad  # the one LiteLLM ships, checksum verified
    assert bad.read_bytes() == b"not a vocabulary\n"


def test_loading_the_tokenizer_leaves_the_environment_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    from instructgen import tokenizers

    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    tokenizers.tiktoken_counter.cache_clear()
    assert tokenizers.tiktoken_counter("gpt-4o") is not None
    assert "TIKTOKEN_CACHE_DIR" not in os.environ

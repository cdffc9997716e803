"""The built-in filters: ROUGE-L parity with rouge_score, whole-word blacklist, rules."""

from __future__ import annotations

import json
import random

import pytest
from conftest import SHARED
from instructgen_filters.rouge import RougeIndex, RougeNoveltyFilter, rouge_l_f, tokenize
from instructgen_filters.rules import (
    BlacklistFilter,
    LeadingCharFilter,
    LengthFilter,
    WriteAProgramFilter,
)

from instructgen import plugins

SEEDS = [
    json.loads(line)["instruction"]
    for line in (SHARED / "data" / "seed_tasks.jsonl").read_text().splitlines()
]


def _mutate(rng: random.Random, text: str) -> str:
    words = text.split()
    for _ in range(rng.randint(0, 5)):
        op = rng.random()
        if op < 0.4 and words:
            words[rng.randrange(len(words))] = rng.choice(rng.choice(SEEDS).split())
        elif op < 0.7 and len(words) > 1:
            del words[rng.randrange(len(words))]
        else:
            words.insert(rng.randrange(len(words) + 1), rng.choice(rng.choice(SEEDS).split()))
    return " ".join(words)


def test_rouge_l_equals_rouge_score_on_3000_pairs() -> None:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rng = random.Random(7)
    for _ in range(3000):
        a = rng.choice(SEEDS)
        b = _mutate(rng, a) if rng.random() < 0.7 else rng.choice(SEEDS)
        assert rouge_l_f(a, b) == scorer.score(a, b)["rougeL"].fmeasure, (a, b)


def test_novelty_decisions_equal_the_reference_loop() -> None:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rng = random.Random(11)
    candidates = [_mutate(rng, rng.choice(SEEDS)) for _ in range(400)]
    kept_ref: list[str] = list(SEEDS)
    ref = []
    for c in candidates:
        best = max(scorer.score(c, k)["rougeL"].fmeasure for k in kept_ref)
        ok = best <= 0.7
        ref.append(ok)
        if ok:
            kept_ref.append(c)
    f = RougeNoveltyFilter()
    f.prime(SEEDS)
    ours = []
    for c in candidates:
        ok = f.check(c) is None
        ours.append(ok)
        if ok:
            f.keep(c)
    assert ours == ref
    assert 0 < sum(ours) < len(ours)  # both outcomes occur


def test_unicode_tokenizer_sees_chinese() -> None:
    a, b = "把这句话翻译成英文。", "把这句话翻译成法文。"
    assert tokenize(a) == []  # rouge_score's tokenizer keeps only [a-z0-9]
    assert rouge_l_f(a, b) == 0.0
    assert rouge_l_f(a, b, tokenizer="unicode") > 0.7
    idx = RougeIndex(tokenizer="unicode")
    idx.add(a)
    assert idx.is_novel(b)[0] is False


def test_hook_filters_are_registered_in_order() -> None:
    names = [e.name for e in plugins.filters() if e.plugin == "filters"]
    assert names == ["length", "blacklist", "write-a-program", "leading-char", "rouge"]


@pytest.mark.parametrize(
    ("text", "dropped"),
    [
        ("Summarize the paragraph in two sentences.", False),  # "graph" inside a word
        ("Describe the graph below.", True),
        ("Open the FILES and count them.", True),
        ("Profile the user from the description.", False),
        ("Explain how to go to the station.", True),
        ("Explain how to go  to the station.", True),
        ("Tell me about the mapping of genes.", False),
    ],
)
def test_blacklist_is_whole_word(text: str, dropped: bool) -> None:
    assert (BlacklistFilter().check(text) is not None) is dropped


def test_blacklist_extendable() -> None:
    f = BlacklistFilter(extra=["video"])
    assert f.check("Watch the video and summarize it.") is not None
    assert BlacklistFilter(words=[]).check("Draw a map") is None


def test_rules() -> None:
    assert LengthFilter().check("Too short here") is not None  # 3 words: needs more
    assert LengthFilter().check("This has four words") is None
    assert LengthFilter().check("word " * 151) is not None
    assert LeadingCharFilter().check("- a list item") is not None
    assert LeadingCharFilter().check("Écris un poème.") is not None
    assert LeadingCharFilter(allow_non_ascii=True).check("Écris un poème.") is None
    assert WriteAProgramFilter().check("Write a program that adds numbers.") is not None
    assert WriteAProgramFilter().check("Write a poem.") is None

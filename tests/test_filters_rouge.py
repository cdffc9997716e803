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


# -- template-built instructions: shared phrasing, many pairs near the threshold ---------------

_FRAMES = [
    "Write a {form} about {topic}.",
    "Write a {style} {form} about {topic} for {who}.",
    "Generate a list of {n} {things} about {topic}.",
    "Explain {topic} to {who} in simple words.",
    "Explain the difference between {topic} and {topic2}.",
    "Rewrite the following {form} in a {style} tone.",
    "Classify the following {form} as {style} or {style2}.",
    "Give {n} {things} for {who} who wants to learn about {topic}.",
    "Summarize the following {form} about {topic} in {n} sentences.",
]
_SLOTS = {
    "form": ["poem", "short story", "email", "news article", "tweet", "essay", "product review"],
    "topic": [
        "climate change",
        "the French Revolution",
        "photosynthesis",
        "machine learning",
        "the stock market",
        "black holes",
        "the immune system",
        "jazz music",
        "volcanoes",
        "coral reefs",
        "the printing press",
        "remote work",
    ],
    "style": ["formal", "casual", "humorous", "persuasive", "poetic"],
    "who": ["a five-year-old", "a busy executive", "a beginner", "a grandparent"],
    "n": ["three", "five", "ten"],
    "things": ["tips", "ideas", "questions", "facts", "reasons"],
}
_SLOTS["topic2"] = _SLOTS["topic"]
_SLOTS["style2"] = _SLOTS["style"]


def _template_candidates(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = sorted({w for v in _SLOTS.values() for p in v for w in p.split()})
    out: list[str] = []
    for _ in range(n):
        if out and rng.random() < 0.5:  # a near-duplicate of a recent one
            base = rng.choice(out[-50:]).split()
            for _ in range(rng.randint(1, 4)):
                op = rng.random()
                if op < 0.5:
                    base[rng.randrange(len(base))] = rng.choice(words)
                elif op < 0.75 and len(base) > 3:
                    del base[rng.randrange(len(base))]
                else:
                    base.insert(rng.randrange(len(base) + 1), rng.choice(words))
            out.append(" ".join(base))
        else:
            frame = rng.choice(_FRAMES)
            out.append(frame.format(**{k: rng.choice(v) for k, v in _SLOTS.items()}))
    return out


def _reference_decisions(candidates: list[str], seeds: list[str]) -> tuple[list[bool], list[float]]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    kept = list(seeds)
    decisions, bests = [], []
    for c in candidates:
        best = max(scorer.score(c, k)["rougeL"].fmeasure for k in kept)
        decisions.append(best <= 0.7)
        bests.append(best)
        if best <= 0.7:
            kept.append(c)
    return decisions, bests


@pytest.mark.parametrize("migration_step", [None, 3])
def test_decisions_on_template_phrasing_equal_the_reference_loop(
    monkeypatch: pytest.MonkeyPatch, migration_step: int | None
) -> None:
    import instructgen_filters.rouge as rouge_mod

    # A step of 3 keeps a re-ranking in progress over many add() calls, so queries are answered
    # by the old index while the new one is built.
    if migration_step is not None:
        monkeypatch.setattr(rouge_mod, "_MIGRATION_STEP", migration_step)
    candidates = _template_candidates(400, seed=3)
    ref, bests = _reference_decisions(candidates, SEEDS[:40])
    near = sum(0.6 <= b <= 0.8 for b in bests)
    assert near >= 60, near  # the test is about the threshold region
    assert 50 < sum(ref) < 350
    f = RougeNoveltyFilter()
    f.prime(SEEDS[:40])
    ours = []
    for c in candidates:
        ok = f.check(c) is None
        ours.append(ok)
        if ok:
            f.keep(c)
    assert ours == ref


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.9])
def test_bounds_never_skip_a_pair_above_the_threshold(threshold: float) -> None:
    """Every pair whose true F exceeds the threshold survives the prefix, count, length and bag
    bounds and is scored exactly, whatever else is indexed (re-ranked token order)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rng = random.Random(5)
    pool = _template_candidates(300, seed=9) + SEEDS
    idx = RougeIndex(threshold=threshold)
    for text in pool:
        idx.add(text)
    checked = 0
    for _ in range(600):
        i = rng.randrange(len(pool))
        query = _mutate(rng, pool[i]) if rng.random() < 0.7 else rng.choice(pool)
        true = scorer.score(query, pool[i])["rougeL"].fmeasure
        if true <= threshold:
            continue
        checked += 1
        best, _ = idx.most_similar(query)
        assert best >= true, (query, pool[i], true, best)
    assert checked > 100


def test_long_items_pass_the_bag_bound() -> None:
    """Items of more than 255 tokens (bag counts capped) are still found."""
    a = "a " * 300 + "b c d"
    b = "a " * 290 + "b c"
    idx = RougeIndex()
    idx.add(a)
    assert idx.most_similar(b)[0] == rouge_l_f(a, b) > 0.9


def test_nearest_is_exact_against_every_kept_instruction() -> None:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    kept = _template_candidates(200, seed=4)
    f = RougeNoveltyFilter()
    f.prime(kept)
    rng = random.Random(8)
    queries = [_mutate(rng, rng.choice(kept)) for _ in range(40)] + SEEDS[:40]
    for q in queries:
        best = max(scorer.score(q, k)["rougeL"].fmeasure for k in kept)
        text, score = f.nearest(q)
        assert score == best, q
        if best > 0:
            assert text is not None and scorer.score(q, text)["rougeL"].fmeasure == best
        else:
            assert text is None  # no kept instruction shares a token
        assert f.max_score(q) == best
    assert sum(f.max_score(q) <= 0.7 for q in queries) >= 20  # below the threshold too
    assert f.nearest("") == (None, 0.0)
    assert RougeNoveltyFilter().nearest("anything at all") == (None, 0.0)
    assert len(f.index) == len(kept)  # nearest keeps nothing


def test_rerank_is_spread_over_adds(monkeypatch: pytest.MonkeyPatch) -> None:
    """No add() re-indexes more than _MIGRATION_STEP items, so a re-ranking of a large index
    never holds the caller (the event loop) for long."""
    import instructgen_filters.rouge as rouge_mod

    monkeypatch.setattr(rouge_mod, "_MIGRATION_STEP", 50)
    idx = RougeIndex()
    calls = 0
    real_index = idx._index

    def counting(*args: object, **kwargs: object) -> None:
        nonlocal calls
        calls += 1
        real_index(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(idx, "_index", counting)
    rng = random.Random(2)
    words = [f"w{i}" for i in range(300)]
    most = 0
    for _ in range(3000):
        calls = 0
        idx.add(" ".join(rng.choices(words, k=12)))
        most = max(most, calls)
    assert most == 50
    assert idx._migration is None or idx._migration[2][0] < len(idx)


def test_unicode_index_matches_its_own_pairwise_scores() -> None:
    texts = [
        "把这句话翻译成英文。",
        "把这句话翻译成法文。",
        "Переведи это предложение.",
        "Переведи это слово.",
    ]
    f = RougeNoveltyFilter(tokenizer="unicode")
    f.prime(texts[:1])
    assert f.check(texts[1]) is not None
    assert f.nearest(texts[1]) == (texts[0], rouge_l_f(texts[0], texts[1], "unicode"))
    f.keep(texts[2])
    assert f.nearest(texts[3])[1] == rouge_l_f(texts[2], texts[3], "unicode")


# -- the pruned check against the plain LCS, pair by pair -------------------------------------

_SCRIPTS = {
    "zh": list("把这句话翻译成英文法写一首关于春天的诗给出三个建议解释原因"),
    "ru": [
        "переведи",
        "это",
        "предложение",
        "напиши",
        "письмо",
        "другу",
        "объясни",
        "почему",
        "небо",
        "синее",
    ],
    "ar": ["اكتب", "قصة", "قصيرة", "عن", "البحر", "اشرح", "لماذا", "السماء", "زرقاء"],
    "ja": list("これは日本語の文章ですかんたんに説明してください"),
}


def _mixed_texts(n: int, seed: int) -> list[str]:
    """Instructions in Latin, CJK, Cyrillic and Arabic script and mixtures of them, many of
    them near-duplicates of one another, plus the shared seed instructions."""
    rng = random.Random(seed)
    latin = [w for s in SEEDS for w in s.split()]
    out: list[str] = []
    for _ in range(n):
        if out and rng.random() < 0.5:
            words = rng.choice(out).split() or ["x"]
            for _ in range(rng.randint(1, 3)):
                j = rng.randrange(len(words))
                words[j] = rng.choice(latin) if rng.random() < 0.5 else words[j] + "s"
            out.append(" ".join(words))
            continue
        script = rng.choice([*_SCRIPTS, "latin", "mixed"])
        k = rng.randint(3, 25)
        if script == "latin":
            words = rng.choices(latin, k=k)
        elif script == "mixed":
            words = rng.choices(latin + _SCRIPTS["zh"] + _SCRIPTS["ru"], k=k)
        elif script in ("zh", "ja"):
            words = ["".join(rng.choices(_SCRIPTS[script], k=k))]
        else:
            words = rng.choices(_SCRIPTS[script], k=k)
        out.append(" ".join(words))
    return out + SEEDS[:60]


def _plain_lcs(a: list[str], b: list[str]) -> int:
    """The textbook dynamic programme, independent of rapidfuzz."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


@pytest.mark.parametrize("tokenizer", ["default", "unicode"])
@pytest.mark.parametrize("shared", [1, 2, 4, 6])
def test_pruned_check_equals_the_plain_lcs_on_every_pair(
    monkeypatch: pytest.MonkeyPatch, tokenizer: str, shared: int
) -> None:
    """For each query, the index's best F equals the best of the plain LCS over every kept item
    whenever that best exceeds the threshold, and the keep/drop decision is the same, with
    1 to 6 shared prefix elements required; re-rankings happen while items are added."""
    import instructgen_filters.rouge as rouge_mod
    from instructgen_filters.rouge import _fmeasure

    monkeypatch.setattr(rouge_mod, "_SHARED", shared)
    rng = random.Random(shared * 31 + len(tokenizer))
    pool = _mixed_texts(220, seed=shared)
    queries = [_mutate(rng, rng.choice(pool)) if rng.random() < 0.5 else t for t in pool[::3]]
    queries += _mixed_texts(40, seed=100 + shared)[:40]
    tokens = {t: tokenize(t, tokenizer) for t in pool + queries}
    for threshold in (0.5, 0.7):
        idx = RougeIndex(threshold=threshold, tokenizer=tokenizer)
        kept: list[str] = []
        for i, text in enumerate(pool):
            idx.add(text)
            kept.append(text)
            if i % 40 != 39:
                continue
            for q in queries[i // 40 :: 4]:
                ta = tokens[q]
                plain = max(
                    _fmeasure(_plain_lcs(ta, tokens[k]), len(ta), len(tokens[k])) for k in kept
                )
                best, _ = idx.most_similar(q)
                assert (best > threshold) == (plain > threshold), (q, best, plain)
                if plain > threshold:
                    assert best == plain, (q, best, plain)

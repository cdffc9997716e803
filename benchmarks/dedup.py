"""ROUGE-L novelty filtering: the reference loop (rouge_score per pair, as Self-Instruct and
Alpaca do it) vs instructgen's filter, on the same candidates, in the same run.

    python benchmarks/dedup.py [--candidates 2000] [--scale 52000]

Candidates are synthetic instructions whose words are drawn with their real frequencies from
the seed tasks and two prose texts of the corpus (a Zipf-like vocabulary), 25% of them
near-duplicates (one to three words changed) of recent candidates or seeds. Both filters start from
the seed instructions and keep a candidate when its best ROUGE-L F against everything kept so
far is <= 0.7. Prints JSON: identical kept sets, seconds, speed ratio; then instructgen alone
on --scale candidates.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from instructgen_filters.rouge import RougeNoveltyFilter

SEED = Path(__file__).resolve().parents[2] / "shared" / "data" / "seed_tasks.jsonl"


def seeds() -> list[str]:
    return [json.loads(x)["instruction"] for x in SEED.read_text().splitlines() if x.strip()]


def _vocabulary(seed_instructions: list[str]) -> tuple[list[str], list[float]]:
    """Words with their frequencies in real English text (seed tasks plus the corpus's prose),
    so sampled instructions follow a Zipf-like distribution as generated ones do."""
    texts = list(seed_instructions)
    corpus = SEED.parents[1] / "corpus"
    for name in ("book-war-and-peace-1p.txt", "language-docs/UDHR_first_article_all.txt"):
        path = corpus / name
        if path.exists():
            texts.append(path.read_text(encoding="utf-8", errors="replace")[:60_000])
    counts: dict[str, int] = {}
    for t in texts:
        for w in t.split():
            w = w.strip(".,?!:;\"'()[]").lower()
            if w.isascii() and w.isalpha():
                counts[w] = counts.get(w, 0) + 1
    words = sorted(counts)
    return words, [float(counts[w]) for w in words]


def candidates(n: int, seed_instructions: list[str], rng_seed: int = 0) -> list[str]:
    rng = random.Random(rng_seed)
    words, weights = _vocabulary(seed_instructions)
    verbs = [
        "Write",
        "Explain",
        "Describe",
        "List",
        "Classify",
        "Summarize",
        "Generate",
        "Find",
        "Rewrite",
        "Compare",
        "Suggest",
        "Identify",
        "Translate",
        "Create",
    ]
    out: list[str] = []
    for _ in range(n):
        if out and rng.random() < 0.25:  # a near-duplicate of a recent candidate or a seed
            base = rng.choice(out[-500:] if rng.random() < 0.8 else seed_instructions).split()
            for _ in range(rng.randint(1, 3)):
                base[rng.randrange(len(base))] = rng.choices(words, weights)[0]
            out.append(" ".join(base))
        else:
            k = rng.randint(6, 18)
            out.append(f"{rng.choice(verbs)} " + " ".join(rng.choices(words, weights, k=k)) + ".")
    return out


def reference(cands: list[str], seed_instructions: list[str]) -> tuple[list[bool], float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    kept = list(seed_instructions)
    decisions = []
    start = time.perf_counter()
    for c in cands:
        best = max(scorer.score(c, k)["rougeL"].fmeasure for k in kept)
        ok = best <= 0.7
        decisions.append(ok)
        if ok:
            kept.append(c)
    return decisions, time.perf_counter() - start


def ours(cands: list[str], seed_instructions: list[str]) -> tuple[list[bool], float, int]:
    start = time.perf_counter()
    f = RougeNoveltyFilter()
    f.prime(seed_instructions)
    decisions = []
    for c in cands:
        ok = f.check(c) is None
        decisions.append(ok)
        if ok:
            f.keep(c)
    return decisions, time.perf_counter() - start, f.index.pairs_scored


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--candidates", type=int, default=2000)
    p.add_argument("--scale", type=int, default=52_000)
    a = p.parse_args()
    s = seeds()
    cands = candidates(a.candidates, s)
    ref_dec, ref_s = reference(cands, s)
    our_dec, our_s, scored = ours(cands, s)
    big = candidates(a.scale, s, rng_seed=1)
    big_dec, big_s, big_scored = ours(big, s)
    print(
        json.dumps(
            {
                "candidates": a.candidates,
                "identical_decisions": ref_dec == our_dec,
                "kept": sum(our_dec),
                "reference_seconds": round(ref_s, 2),
                "instructgen_seconds": round(our_s, 3),
                "speedup": round(ref_s / our_s, 1),
                "instructgen_exact_pairs_scored": scored,
                "scale": {
                    "candidates": a.scale,
                    "kept": sum(big_dec),
                    "seconds": round(big_s, 2),
                    "exact_pairs_scored": big_scored,
                    "goal_seconds": 60,
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

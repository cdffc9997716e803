"""ROUGE-L novelty filtering: the reference loop (rouge_score per pair, as Self-Instruct and
Alpaca do it) vs instructgen's filter, on two kinds of candidates, in the same run.

    python benchmarks/dedup.py [--candidates 2000] [--scale 52000] [--only words|templates]

``words``: instructions whose words are drawn with their real frequencies from the seed tasks
and two prose texts of the corpus (a Zipf-like vocabulary), 25 % of them near-duplicates (one to
three words changed) of recent candidates or seeds.

``templates``: instructions with the shared phrasing real generations have ("Write a ...",
"Generate a list of ...", "Explain ... to ..."): 24 task frames filled from slot lists (topics
with an aspect, forms, audiences, styles, ...), often with an opener ("Please ...", "Can you
..."), a context ("for a school newsletter") and one or two constraints ("Use bullet points.").
25 % are variants of one of the last 2,000 candidates with one or two slots, the opener or the
closing sentence changed, so many pairs sit near the 0.7 threshold.

Both filters start from the seed instructions and keep a candidate when its best ROUGE-L F
against everything kept so far is <= 0.7. For each kind: identical decisions and seconds of the
reference loop and of instructgen on --candidates; then instructgen alone on --scale candidates
(seconds, CPU seconds, the longest single check() and keep()). Last, with the --scale template
index full, the longest check() of candidates built to share most tokens with many kept
instructions (the worst case for the bounds): the methods call check() and keep() in one
worker thread, in request order, so their length bounds how fast answers are consumed.
Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from instructgen_filters.rouge import RougeNoveltyFilter, tokenize

SEED = Path(__file__).resolve().parents[2] / "shared" / "data" / "seed_tasks.jsonl"


def seeds() -> list[str]:
    return [json.loads(x)["instruction"] for x in SEED.read_text().splitlines() if x.strip()]


# -- random words with real frequencies --------------------------------------------------------


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
    verbs = _opts(
        "Write|Explain|Describe|List|Classify|Summarize|Generate|Find|Rewrite|Compare|Suggest|"
        "Identify|Translate|Create"
    )
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


# -- template-built instructions with shared phrasing ------------------------------------------


def _opts(joined: str) -> list[str]:
    return joined.split("|")


FRAMES = [
    "Write a {form} about {aspect} {topic}.",
    "Write a {style} {form} about {aspect} {topic} for {audience}.",
    "Generate a list of {num} {things} about {aspect} {topic}.",
    "Generate a list of {num} {things} for {act}.",
    "Explain {aspect} {topic} to {audience}.",
    "Explain the difference between {aspect} {topic} and {topic2}.",
    "Describe the impact of {aspect} {topic} on {topic2}.",
    "Summarize the following {item} in {num} sentences.",
    "Classify the following {item} as {adj} or {adj2}.",
    "Rewrite the following {item} in a {style} tone.",
    "Translate the following {item} into {lang}.",
    "Give {num} {things} for {act}.",
    "What are the main {things} of {aspect} {topic}?",
    "Compare and contrast {aspect} {topic} and {topic2} in a {style} {form}.",
    "Create a quiz with {num} questions about {aspect} {topic} for {audience}.",
    "Suggest {num} {things} to help {audience} with {act}.",
    "Given a {item} about {aspect} {topic}, identify its main idea and explain it to {audience}.",
    "Write a {form} that explains {aspect} {topic} to {audience} in a {style} way.",
    "Come up with {num} creative {things} related to {aspect} {topic}.",
    "Identify the {adj} statements in the following {item} about {aspect} {topic}.",
    "Find the most important {things} in the given {item} and list them.",
    "How can {audience} get better at {act}?",
    "Pretend you are an expert on {aspect} {topic}. Answer the following question from {audience}.",
    "Make a {style} {form} about {act} and {aspect} {topic}.",
]
TOPICS = _opts(
    "climate change|the French Revolution|photosynthesis|machine learning|the stock market|"
    "renewable energy|the human heart|black holes|social media|the Roman Empire|"
    "quantum computing|healthy eating|remote work|the water cycle|artificial intelligence|"
    "the Great Depression|ancient Egypt|electric cars|meditation|the immune system|volcanoes|"
    "the internet|democracy|coffee|honey bees|space exploration|the Cold War|plate tectonics|"
    "inflation|vaccines|the Renaissance|climate policy|ocean currents|cryptocurrency|"
    "urban gardening|sleep|video games|the printing press|World War II|the solar system|"
    "recycling|public transportation|jazz music|the Industrial Revolution|genetics|"
    "online privacy|time management|the Amazon rainforest|minimalism|chess|the Olympic Games|"
    "nuclear power|dinosaurs|the moon landing|antibiotics|coral reefs|blockchain|the Silk Road|"
    "yoga|electricity|the human brain|wildfires|friendship|public speaking|the gig economy|tea|"
    "bicycles|earthquakes|the periodic table|poetry|global trade|migration|"
    "the printing of money|smartphones|desert ecosystems|the Beatles|compound interest|"
    "volunteering|soil erosion|the Mona Lisa|penguins|the Eiffel Tower|rainbows|"
    "cloud computing|marathon training|the Cuban Missile Crisis|fermentation|tsunamis|"
    "the Harlem Renaissance|gravity|chocolate|the Internet of Things|tides|libraries|"
    "bees and pollination|mountain climbing|solar panels|the Great Wall of China|hurricanes|"
    "cybersecurity"
)
ASPECTS = _opts(
    "the history of|the causes of|the effects of|the future of|the ethics of|the economics of|"
    "the science behind|common myths about|the pros and cons of|the origins of|"
    "recent advances in|the role of government in|the cultural impact of|the risks of|"
    "careers in|the basic principles of|key debates about|the environmental cost of|"
    "famous people in|everyday uses of"
)
CONSTRAINTS = _opts(
    "Include at least one statistic.|Mention a historical example.|Avoid technical jargon.|"
    "End with a question.|Use bullet points.|Start with a surprising fact.|"
    "Cite one reliable source.|Add a short conclusion.|Use an analogy from everyday life.|"
    "Write no more than one hundred words.|Include a relevant quote.|"
    "Make it suitable for children.|Use the second person.|Focus on practical advice.|"
    "Give a real world example.|Highlight one common misconception.|"
    "Organize the answer as a numbered list.|Add a catchy title.|"
    "Use a friendly tone throughout.|Explain any difficult terms.|"
    "Mention both advantages and disadvantages.|Keep each sentence under fifteen words.|"
    "Finish with a call to action.|Include a short summary at the top.|"
    "Refer to a famous person.|Use vivid imagery.|Do not use the letter z.|"
    "Write it as a dialogue between two friends.|Add a fun fact at the end.|"
    "Compare it with a similar idea."
)
SLOTS: dict[str, list[Any]] = {
    "aspect": ASPECTS,
    "topic": TOPICS,
    "topic2": TOPICS,
    "form": _opts(
        "poem|short story|haiku|limerick|song|blog post|news article|speech|essay|tweet|"
        "product description|dialogue|letter|slogan|riddle|joke|fable|sonnet|review|cover letter"
    ),
    "audience": _opts(
        "a five-year-old|a high school student|a busy executive|a software engineer|a beginner|"
        "an expert|a tourist|a grandparent|a new employee|a college freshman|"
        "a small business owner|a teacher"
    ),
    "style": _opts(
        "formal|casual|persuasive|humorous|concise|poetic|professional|friendly|academic|dramatic"
    ),
    "lang": _opts("French|Spanish|German|Italian|Japanese|Portuguese|Chinese|Russian|Korean|Dutch"),
    "num": _opts("two|three|four|five|six|seven|eight|ten"),
    "things": _opts(
        "tips|ideas|questions|reasons|examples|facts|mistakes|benefits|steps|books|strategies|"
        "activities"
    ),
    "item": _opts(
        "sentence|paragraph|tweet|email|product review|news headline|movie plot|"
        "customer complaint|poem|recipe"
    ),
    "adj": _opts(
        "positive|negative|neutral|sarcastic|urgent|formal|informal|fictional|factual|ambiguous"
    ),
    "act": _opts(
        "studying for exams|saving money|learning a new language|staying productive|"
        "planning a trip|starting a business|writing a resume|reducing stress|cooking dinner|"
        "running a meeting|training a puppy|keeping a journal"
    ),
    "ctx": _opts(
        "for a school newsletter|for a podcast episode|for a company blog|for a science fair|"
        "for a museum guide|for a radio show|for a birthday card|for a job interview|"
        "for a travel brochure|for a children's magazine|for a history class|"
        "for a team meeting|for a local newspaper|for a social media post|for a training manual"
    ),
    "con": CONSTRAINTS,
    "con2": CONSTRAINTS,
    "ctx_on": [False, True],
    "con_on": [False, True, True],
    "con2_on": [False, True],
}
SLOTS["adj2"] = SLOTS["adj"]
OPENERS = ["", "", "", "", "Please ", "Can you ", "I need you to ", "Your task: "]
CLOSERS = _opts("||||Keep it short.|Use simple words.|Be specific.|Answer in one paragraph.")


def _render(frame: int, slots: dict[str, Any], opener: str, closer: str) -> str:
    body = FRAMES[frame].format(**slots)
    if slots["ctx_on"]:
        body = f"{body[:-1]} {slots['ctx']}{body[-1]}"
    if slots["con_on"]:
        body += " " + slots["con"]
        if slots["con2_on"]:
            body += " " + slots["con2"]
    if opener:
        body = opener + body[0].lower() + body[1:]
    return f"{body} {closer}" if closer else body


def template_candidates(n: int, rng_seed: int = 0) -> list[str]:
    rng = random.Random(rng_seed)
    made: list[tuple[int, dict[str, Any], str, str]] = []
    out: list[str] = []
    for _ in range(n):
        if made and rng.random() < 0.25:  # a variant of a recent candidate
            frame, slots, opener, closer = rng.choice(made[-2000:])
            slots = dict(slots)
            for _ in range(rng.choice((1, 1, 1, 2))):
                r = rng.random()
                if r < 0.6:
                    k = rng.choice(sorted(slots))
                    slots[k] = rng.choice(SLOTS[k])
                elif r < 0.8:
                    opener = rng.choice(OPENERS)
                else:
                    closer = rng.choice(CLOSERS)
        else:
            frame = rng.randrange(len(FRAMES))
            slots = {k: rng.choice(v) for k, v in SLOTS.items()}
            opener, closer = rng.choice(OPENERS), rng.choice(CLOSERS)
        made.append((frame, slots, opener, closer))
        out.append(_render(frame, slots, opener, closer))
    return out


# -- the two filters ------------------------------------------------------------------------------


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


def ours(
    cands: list[str], seed_instructions: list[str]
) -> tuple[list[bool], dict[str, Any], RougeNoveltyFilter]:
    """Decisions and figures: seconds, CPU seconds, pairs scored, the longest check() and
    keep() (wall and CPU; wall includes time the machine gave to other processes)."""
    wall, cpu = time.perf_counter, time.process_time
    start, start_cpu = wall(), cpu()
    f = RougeNoveltyFilter()
    f.prime(seed_instructions)
    decisions = []
    check_ms, check_cpu_ms, keep_ms, keep_cpu_ms = 0.0, 0.0, 0.0, 0.0
    for c in cands:
        t0, c0 = wall(), cpu()
        ok = f.check(c) is None
        t1, c1 = wall(), cpu()
        check_ms, check_cpu_ms = max(check_ms, t1 - t0), max(check_cpu_ms, c1 - c0)
        decisions.append(ok)
        if ok:
            f.keep(c)
            keep_ms, keep_cpu_ms = max(keep_ms, wall() - t1), max(keep_cpu_ms, cpu() - c1)
    figures = {
        "candidates": len(cands),
        "kept": sum(decisions),
        "seconds": round(wall() - start, 2),
        "cpu_seconds": round(cpu() - start_cpu, 2),
        "exact_pairs_scored": f.index.pairs_scored,
        "pairs_per_candidate": round(f.index.pairs_scored / max(1, len(cands)), 2),
        "max_check_ms": round(check_ms * 1000, 1),
        "max_check_cpu_ms": round(check_cpu_ms * 1000, 1),
        "max_keep_ms": round(keep_ms * 1000, 1),
        "max_keep_cpu_ms": round(keep_cpu_ms * 1000, 1),
    }
    return decisions, figures, f


def worst_case(f: RougeNoveltyFilter, kept: list[str], rng_seed: int = 2) -> dict[str, Any]:
    """check() of candidates that share most of their tokens with many kept instructions:
    every frame filled with the most common slot values, the same with an opener and two
    constraints, the 12 to 40 most common kept tokens in a row, and kept instructions with one
    word changed (these are dropped)."""
    rng = random.Random(rng_seed)
    words: Counter[str] = Counter()
    for text in kept:
        words.update(tokenize(text))
    common = [w for w, _ in words.most_common(40)]
    probes = []
    fill = {k: v[0] for k, v in SLOTS.items()}
    for frame in range(len(FRAMES)):
        probes.append(_render(frame, {**fill, "ctx_on": False, "con_on": False}, "", ""))
        full = {**fill, "ctx_on": True, "con_on": True, "con2_on": True, "con2": CONSTRAINTS[1]}
        probes.append(_render(frame, full, "Please ", CLOSERS[-1]))
    probes += [" ".join(common[:k]) for k in range(12, 41, 4)]
    for text in rng.sample(kept, 100):
        w = text.split()
        w[rng.randrange(len(w))] = rng.choice(common)
        probes.append(" ".join(w))
    times, cpu_times = [], []
    for p in probes:
        t0, c0 = time.perf_counter(), time.process_time()
        f.check(p)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    return {
        "kept_instructions": len(f.index),
        "probes": len(probes),
        "max_check_ms": round(max(times) * 1000, 2),
        "max_check_cpu_ms": round(max(cpu_times) * 1000, 2),
        "median_check_ms": round(statistics.median(times) * 1000, 3),
        "goal_ms": 100,
    }


def run_kind(
    name: str, make: Callable[[int, int], list[str]], s: list[str], n_parity: int, n_scale: int
) -> dict[str, Any]:
    cands = make(n_parity, 0)
    ref_dec, ref_s = reference(cands, s)
    our_dec, small, _ = ours(cands, s)
    big = make(n_scale, 1)
    big_dec, scale, f = ours(big, s)
    out = {
        "parity": {
            "candidates": n_parity,
            "identical_decisions": ref_dec == our_dec,
            "kept": sum(our_dec),
            "reference_seconds": round(ref_s, 2),
            "instructgen_seconds": small["seconds"],
            "speedup": round(ref_s / max(small["seconds"], 1e-3), 1),
        },
        "scale": {**scale, "goal_seconds": 60},
    }
    if name == "templates":
        kept = [c for c, ok in zip(big, big_dec, strict=True) if ok]
        out["worst_case_check"] = worst_case(f, kept)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--candidates", type=int, default=2000, help="compared with rouge_score")
    p.add_argument("--scale", type=int, default=52_000, help="instructgen alone")
    p.add_argument("--only", choices=["words", "templates"], default=None)
    a = p.parse_args()
    s = seeds()
    kinds: dict[str, Callable[[int, int], list[str]]] = {
        "words": lambda n, r: candidates(n, s, rng_seed=r),
        "templates": template_candidates,
    }
    result: dict[str, Any] = {"load_average_start": [round(x, 1) for x in os.getloadavg()]}
    for name, make in kinds.items():
        if a.only in (None, name):
            result[name] = run_kind(name, make, s, a.candidates, a.scale)
    result["load_average_end"] = [round(x, 1) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

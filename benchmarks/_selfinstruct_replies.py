"""Plausible replies to the Self-Instruct prompts for benchmarks: a continued numbered list of
seven new instructions (varied enough that about 5 of the 7 pass the filters over a
2,000-instruction run; with the seed tasks' phrasing the ROUGE-L filter drops the rest), a
Yes/No classification, and instances in the two instance formats. Each reply depends only on
the prompt, so reruns hit the cache."""

from __future__ import annotations

import hashlib
import random
import re

VERBS = [
    "Explain",
    "Summarize",
    "Compare",
    "Describe",
    "List",
    "Rewrite",
    "Evaluate",
    "Suggest",
    "Outline",
    "Translate",
    "Critique",
    "Plan",
    "Estimate",
    "Design",
    "Identify",
    "Propose",
    "Justify",
    "Illustrate",
    "Recommend",
    "Analyze",
    "Brainstorm",
    "Paraphrase",
    "Simplify",
    "Defend",
    "Question",
    "Predict",
    "Rank",
    "Contrast",
    "Review",
    "Draft",
]
ADJS = [
    "quarterly",
    "vegan",
    "historic",
    "formal",
    "beginner",
    "remote",
    "coastal",
    "urban",
    "seasonal",
    "minimalist",
    "medieval",
    "solar",
    "nocturnal",
    "academic",
    "rural",
    "arctic",
    "tropical",
    "digital",
    "handmade",
    "public",
    "private",
    "volunteer",
    "regional",
    "budget",
    "luxury",
    "weekly",
    "annual",
    "experimental",
    "classical",
    "modern",
    "portable",
    "indoor",
    "outdoor",
    "local",
    "national",
    "wireless",
    "organic",
    "crowded",
    "quiet",
    "noisy",
    "ancient",
    "futuristic",
]
NOUNS = [
    "budget",
    "recipe",
    "itinerary",
    "poem",
    "contract",
    "email",
    "lesson",
    "workout",
    "garden",
    "invoice",
    "speech",
    "puzzle",
    "playlist",
    "experiment",
    "timeline",
    "review",
    "museum",
    "bridge",
    "satellite",
    "orchestra",
    "volcano",
    "startup",
    "library",
    "ferry",
    "bakery",
    "hospital",
    "festival",
    "newsletter",
    "podcast",
    "stadium",
    "vineyard",
    "laboratory",
    "marathon",
    "election",
    "courthouse",
    "warehouse",
    "telescope",
    "glacier",
    "harbor",
    "railway",
    "theater",
    "monastery",
    "factory",
    "classroom",
    "pharmacy",
    "airport",
    "embassy",
    "brewery",
    "aquarium",
    "observatory",
    "cathedral",
    "market",
    "carnival",
    "orchard",
    "lighthouse",
    "submarine",
    "workshop",
    "canal",
    "quarry",
    "bazaar",
    "studio",
]
AUDIENCES = [
    "a nurse",
    "a retired teacher",
    "first-year students",
    "a small bakery",
    "a hiking club",
    "new parents",
    "a city council",
    "a chess coach",
    "tourists",
    "a radio host",
    "software testers",
    "a choir",
    "farmers",
    "a museum guide",
    "night-shift workers",
    "a startup founder",
    "high-school debaters",
    "a book club",
    "a football team",
    "commuters",
    "a landlord",
    "a wedding planner",
    "volunteer firefighters",
    "a journalist",
]
TOPICS = [
    "safety",
    "cost",
    "history",
    "sustainability",
    "accessibility",
    "scheduling",
    "marketing",
    "maintenance",
    "privacy",
    "staffing",
    "logistics",
    "etiquette",
    "nutrition",
    "insurance",
    "training",
    "weather",
    "noise",
    "lighting",
    "storage",
    "transport",
    "fundraising",
    "hygiene",
    "security",
    "signage",
]


TONES = [
    "friendly",
    "formal",
    "playful",
    "neutral",
    "urgent",
    "calm",
    "persuasive",
    "humble",
    "confident",
    "poetic",
    "blunt",
    "warm",
    "skeptical",
    "optimistic",
    "technical",
    "casual",
]
PLACES = [
    "Lisbon",
    "a mountain village",
    "a night market",
    "a school kitchen",
    "an island ferry port",
    "a city park",
    "a county fair",
    "a desert town",
    "a river delta",
    "a university campus",
    "a fishing harbor",
    "a ski resort",
]


def rng_for(text: str) -> random.Random:
    return random.Random(int(hashlib.sha256(text.encode()).hexdigest()[:16], 16))


def noun(rng: random.Random) -> str:
    """A noun or, as often, a compound of two ("harbor festival"): enough variety that most
    generated instructions pass the ROUGE-L novelty filter, as most of a real model's do."""
    return rng.choice(NOUNS) if rng.random() < 0.1 else f"{rng.choice(NOUNS)} {rng.choice(NOUNS)}"


def instruction(rng: random.Random) -> str:
    v, a, n, who, t = (
        rng.choice(VERBS),
        rng.choice(ADJS),
        noun(rng),
        rng.choice(AUDIENCES),
        rng.choice(TOPICS),
    )
    a2, n2 = rng.choice(ADJS), noun(rng)
    k = rng.randint(2, 9)
    shapes = [
        f"{v} the {t} of a {a} {n} for {who}.",
        f"{v} {k} ways {who} could improve the {t} of their {a} {n}.",
        f"Given a {a2} {n2}, {v.lower()} how its {t} compares with a {a} {n}.",
        f"{v} a {a} {n} plan focused on {t}, written for {who}.",
        f"As {who}, {v.lower()} why the {t} of a {n} near a {a2} {n2} matters.",
        f"Classify the following {a} {n} reviews by their view on {t}.",
        f"Decide whether a {a} {n} is a good place for {who} to discuss {t}.",
        f"{v} the {t} rules a {a} {n} should follow when {who} visit the {n2}.",
        f"Write a {rng.choice(TONES)} note from {who} about the {t} of the {a} {n}.",
        f"What should {who} know about {t} before opening a {a} {n} in {rng.choice(PLACES)}?",
        f"{v} a checklist of {k} steps for the {t} of a {n}.",
        f"Turn this {a} {n} announcement into a {rng.choice(TONES)} message for {who}.",
    ]
    text = rng.choice(shapes)
    extra = rng.random()
    t2, t3, who2 = rng.choice(TOPICS), rng.choice(TOPICS), rng.choice(AUDIENCES)
    if extra < 0.2:
        text += f" Keep it under {rng.randint(3, 30) * 10} words."
    elif extra < 0.4:
        place, adj, thing = rng.choice(PLACES), rng.choice(ADJS), rng.choice(NOUNS)
        text += f" Use an example from {place} and a {adj} {thing}."
    elif extra < 0.6:
        text += f" Mention {t2} and {t3} briefly."
    elif extra < 0.8:
        text += f" Write it in a {rng.choice(TONES)} tone for {who2}."
    return text


def bootstrap(prompt: str, chat: bool) -> str:
    rng = rng_for(prompt)
    start = int(re.search(r"\n(\d+)\.\s*$", prompt).group(1))  # type: ignore[union-attr]
    items = [instruction(rng) for _ in range(7)]
    lines = [items[0]] + [f"{start + i}. {item}" for i, item in enumerate(items) if i]
    body = "\n".join(lines)
    return f"{start}. {body}" if chat else " " + body


def classify(prompt: str) -> str:
    task = prompt.rsplit("Task:", 1)[-1]
    return " Yes" if re.search(r"Classify|Decide whether", task) else " No"


def instances(prompt: str) -> str:
    rng = rng_for(prompt)
    if "generate an input that corresponds" in prompt:
        labels = rng.sample(["Positive", "Negative", "Neutral", "Mixed"], 3)
        return "\n".join(
            f"Class label: {lab}\nText: The {rng.choice(ADJS)} {rng.choice(NOUNS)} was "
            f"described by {rng.choice(AUDIENCES)} in terms of {rng.choice(TOPICS)}."
            for lab in labels
        )
    parts = []
    for i in range(1, rng.randint(2, 4)):
        parts.append(
            f"Example {i}\nInput: A {rng.choice(ADJS)} {rng.choice(NOUNS)} run by "
            f"{rng.choice(AUDIENCES)}.\nOutput: Start with its {rng.choice(TOPICS)}: the "
            f"{rng.choice(NOUNS)} needs {rng.randint(2, 40)} more hours of work."
        )
    return "\n".join(parts)


def alpaca(prompt: str, chat: bool) -> str:
    """A reply to Alpaca's prompt as models write them: blocks from the next number up to 19
    (the request stops before 20), sometimes one block short, from chat models sometimes a
    preamble line or markdown bold labels; about one item in eight is one the filters drop
    (blacklisted, too short, "Write a program", a copy of a shown instruction)."""
    rng = rng_for(prompt)
    start = int(re.search(r"(\d+)\. Instruction:\s*$", prompt).group(1))  # type: ignore[union-attr]
    shown = re.findall(r"^\d+\. Instruction: (.+)$", prompt, re.M)
    last = 19 - (1 if rng.random() < 0.3 else 0)
    bold = chat and rng.random() < 0.3
    blocks = []
    for num in range(start, last + 1):
        r = rng.random()
        if r < 0.04 and shown:
            inst = rng.choice(shown)
        elif r < 0.08:
            inst = f"Describe the {noun(rng)} in this video for {rng.choice(AUDIENCES)}."
        elif r < 0.10:
            inst = "Say hello."
        elif r < 0.12:
            inst = f"Write a program that sorts a {noun(rng)} list."
        else:
            inst = instruction(rng)
        given = (
            "<noinput>"
            if rng.random() < 0.4
            else f"The {rng.choice(ADJS)} {noun(rng)} of {rng.choice(AUDIENCES)} in "
            f"{rng.choice(PLACES)}."
        )
        out = (
            f"Start with its {rng.choice(TOPICS)}: the {noun(rng)} needs "
            f"{rng.randint(2, 40)} more hours of work."
        )
        if bold:
            head = [f"**{num}. {x}:**" for x in ("Instruction", "Input", "Output")]
        else:
            head = [f"{num}. {x}:" for x in ("Instruction", "Input", "Output")]
        blocks.append(f"{head[0]} {inst}\n{head[1]}\n{given}\n{head[2]}\n{out}")
    text = "\n###\n".join(blocks)
    if not chat:
        return text.split(":", 1)[1]  # a completion continues after "N. Instruction:"
    if rng.random() < 0.3:
        text = f"Sure! Here are {last - start + 1} more tasks:\n\n" + text
    return text


def kind(prompt: str) -> str:
    if "come up with a set of 20 diverse task instructions" in prompt:
        return "alpaca"
    if "Come up with a series of tasks" in prompt:
        return "bootstrap"
    if "Is it classification?" in prompt:
        return "classify"
    return "instances"


def reply(prompt: str, chat: bool) -> str:
    k = kind(prompt)
    if k == "alpaca":
        return alpaca(prompt, chat)
    if k == "bootstrap":
        return bootstrap(prompt, chat)
    if k == "classify":
        return classify(prompt)
    return instances(prompt)

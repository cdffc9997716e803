"""The elimination step of Evol-Instruct, as the paper defines it (Xu et al. 2023, §3.3).

An evolution fails, and its parent goes back to the pool, when

1. the evolved instruction brings no information gain over its parent: the LLM judges the
   two "Equal" (``replies.parse_equality``);
2. the answer contains "sorry" and is shorter than 80 words: the model struggled to answer;
3. the answer is only punctuation and stop words;
4. the evolved instruction copies words of the evolving prompt ("given prompt",
   "rewritten prompt", "#Rewritten Prompt#", ...).

The reason names below are the keys of ``eliminations`` in run.json.
"""

from __future__ import annotations

import re

__all__ = [
    "ANSWER_ONLY_STOP_WORDS",
    "ANSWER_REFUSAL",
    "COPIED_TEMPLATE",
    "NO_INFORMATION_GAIN",
    "REASONS",
    "STOP_WORDS",
    "TEMPLATE_WORDS",
    "answer_elimination",
    "copies_template",
    "is_refusal",
    "only_stop_words",
]

NO_INFORMATION_GAIN = "no information gain (judged equal)"
ANSWER_REFUSAL = "answer contains 'sorry' and has under 80 words"
ANSWER_ONLY_STOP_WORDS = "answer is only punctuation and stop words"
COPIED_TEMPLATE = "evolved instruction copies the template's words"
REASONS = (NO_INFORMATION_GAIN, ANSWER_REFUSAL, ANSWER_ONLY_STOP_WORDS, COPIED_TEMPLATE)

REFUSAL_WORD = "sorry"
REFUSAL_MAX_WORDS = 80

TEMPLATE_WORDS = (
    "given prompt",
    "rewritten prompt",
    "created prompt",
    "#rewritten prompt#",
    "#given prompt#",
    "#the given prompt#",
    "#created prompt#",
)
"""Matched case-insensitively, with any run of spaces or underscores between the words."""

_TEMPLATE = re.compile(r"#?\s*(?:the[\s_]+)?(?:given|rewritten|created)[\s_]+prompt\s*#?", re.I)

_STOP_WORDS_TEXT = """
    a about above after again against all am an and any are aren't as at be because been before
    being below between both but by can can't cannot could couldn't did didn't do does doesn't
    doing don't down during each few for from further had hadn't has hasn't have haven't having
    he he'd he'll he's her here here's hers herself him himself his how how's i i'd i'll i'm
    i've if in into is isn't it it's its itself just let's me more most mustn't my myself no nor
    not now of off on once only or other ought our ours ourselves out over own same shan't she
    she'd she'll she's should shouldn't so some such than that that's the their theirs them
    themselves then there there's these they they'd they'll they're they've this those through
    to too under until up very was wasn't we we'd we'll we're we've were weren't what what's
    when when's where where's which while who who's whom why why's will with won't would
    wouldn't you you'd you'll you're you've your yours yourself yourselves s t d ll m o re ve y
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
"""English stop words (the common function-word list: articles, pronouns, auxiliaries,
prepositions, conjunctions and their contractions)."""

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def copies_template(instruction: str) -> bool:
    """Rule 4: the evolved instruction contains the evolving prompt's own words."""
    return _TEMPLATE.search(instruction) is not None


def is_refusal(answer: str) -> bool:
    """Rule 2: "sorry" in the answer, and fewer than 80 words."""
    return REFUSAL_WORD in answer.lower() and len(answer.split()) < REFUSAL_MAX_WORDS


def only_stop_words(answer: str) -> bool:
    """Rule 3: nothing but punctuation and stop words (an empty answer included). Words of
    any script count, so an answer in Chinese is not "only punctuation"."""
    return all(w.lower().replace("’", "'") in STOP_WORDS for w in _WORD.findall(answer))


def answer_elimination(answer: str) -> str | None:
    """The reason rule 2 or 3 eliminates an evolution for its ``answer``, or ``None``."""
    if is_refusal(answer):
        return ANSWER_REFUSAL
    if only_stop_words(answer):
        return ANSWER_ONLY_STOP_WORDS
    return None

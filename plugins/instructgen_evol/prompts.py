"""The Evol-Instruct prompts (Xu et al. 2023, "WizardLM: Empowering Large Language Models to
Follow Complex Instructions", arXiv:2304.12244), written on the paper's templates.

Five in-depth operations rewrite ``#The Given Prompt#`` into a harder ``#Rewritten Prompt#``
that adds only 10 to 20 words; the in-breadth operation creates a ``#Created Prompt#``, a new
and rarer prompt of the same domain. The equality check asks whether an evolved prompt and its
parent are "Equal or Not Equal". The markers are the paper's: its elimination step (and the
reply parser) rely on them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from instructgen import Request

__all__ = [
    "ANSWER_SYSTEM",
    "DEPTH_OPERATIONS",
    "INPUT_FORMATS",
    "OPERATIONS",
    "Evolution",
    "answer_request",
    "choose_evolution",
    "equality_prompt",
    "equality_request",
    "evolution_prompt",
    "evolution_request",
]

ADD_CONSTRAINTS = "add-constraints"
DEEPENING = "deepening"
CONCRETIZING = "concretizing"
REASONING_STEPS = "reasoning-steps"
COMPLICATE_INPUT = "complicate-input"
IN_BREADTH = "in-breadth"

DEPTH_OPERATIONS = (ADD_CONSTRAINTS, DEEPENING, CONCRETIZING, REASONING_STEPS, COMPLICATE_INPUT)
OPERATIONS = (*DEPTH_OPERATIONS, IN_BREADTH)
"""The paper's six evolving prompts; each round picks one of them per instruction with equal
probability."""

INPUT_FORMATS = (
    "JSON data",
    "XML data",
    "SQL database",
    "Python code",
    "HTML page",
    "Shell cmd",
    "Markdown table",
    "CSV data",
    "LaTeX",
    "formula",
)
"""What "complicate the input" adds to a prompt, one chosen per evolution (the paper's
examples add data in such formats as the rewritten prompt's input)."""

ANSWER_SYSTEM = "You are a helpful assistant."
"""The system message of every request, as in the WizardLM code."""

_DEPTH_METHODS = {
    ADD_CONSTRAINTS: "Add one more constraint or requirement to #The Given Prompt#.",
    DEEPENING: (
        "If #The Given Prompt# asks about certain issues, increase the depth and breadth of "
        "the inquiry."
    ),
    CONCRETIZING: "Replace general concepts with more specific concepts.",
    REASONING_STEPS: (
        "If #The Given Prompt# can be solved with just a few simple thinking steps, rewrite it "
        "to ask explicitly for reasoning in several steps."
    ),
    COMPLICATE_INPUT: (
        "Add {input_format} format data as input data in #Rewritten Prompt#: the rewritten "
        "prompt must include that data and ask for it to be used."
    ),
}

_DEPTH = """I want you to act as a Prompt Rewriter.
Your objective is to rewrite a given prompt into a more complex version, to make famous AI \
systems (e.g. ChatGPT and GPT-4) a bit harder to handle.
The rewritten prompt must stay reasonable, and humans must be able to understand it and respond \
to it.
Your rewriting must not leave out the non-text parts of #The Given Prompt#, such as tables and \
code, nor the input in #The Given Prompt#.
You SHOULD complicate the given prompt with the following method:
{method}
Try your best not to make the #Rewritten Prompt# verbose: #Rewritten Prompt# may add only 10 to \
20 words to #The Given Prompt#.
'#The Given Prompt#', '#Rewritten Prompt#', 'given prompt' and 'rewritten prompt' are not \
allowed to appear in #Rewritten Prompt#.

#The Given Prompt#:
{instruction}

#Rewritten Prompt#:
"""

_BREADTH = """I want you to act as a Prompt Creator.
Your goal is to draw inspiration from the #Given Prompt# to create a brand new prompt.
The new prompt should belong to the same domain as the #Given Prompt# but be even rarer.
The LENGTH and complexity of the #Created Prompt# should be similar to those of the \
#Given Prompt#.
The #Created Prompt# must be reasonable, and humans must be able to understand it and respond \
to it.
'#Given Prompt#', '#Created Prompt#', 'given prompt' and 'created prompt' are not allowed to \
appear in #Created Prompt#.

#Given Prompt#:
{instruction}

#Created Prompt#:
"""

_EQUALITY = """Here are two instructions to an AI assistant. Do you think they are equal to \
each other, meeting both of these requirements?
1. They have the same constraints and requirements.
2. They have the same depth and breadth of inquiry.
The First Prompt: {first}
The Second Prompt: {second}
Your Judgement (Just answer: Equal or Not Equal. No need to explain the reason.):"""


@dataclass(frozen=True)
class Evolution:
    """One evolving step chosen for an instruction: the operation and, for "complicate the
    input", the format of the data it adds."""

    operation: str
    input_format: str | None = None


def choose_evolution(
    seed: int, round_no: int, index: int, operations: tuple[str, ...] = OPERATIONS
) -> Evolution:
    """The operation for pool instruction ``index`` in round ``round_no``, with equal
    probability among ``operations``: a function of (seed, round, index) only, so a rerun
    makes the same choices whatever the order in which answers arrived."""
    rng = random.Random(f"{seed}:evol-instruct:{round_no}:{index}")
    operation = rng.choice(operations)
    fmt = rng.choice(INPUT_FORMATS) if operation == COMPLICATE_INPUT else None
    return Evolution(operation, fmt)


def evolution_prompt(evolution: Evolution, instruction: str) -> str:
    """The prompt asking to evolve ``instruction`` by ``evolution``."""
    text = instruction.strip()
    if evolution.operation == IN_BREADTH:
        return _BREADTH.format(instruction=text)
    method = _DEPTH_METHODS.get(evolution.operation)
    if method is None:
        raise ValueError(f"unknown Evol-Instruct operation {evolution.operation!r}")
    if evolution.operation == COMPLICATE_INPUT:
        method = method.format(input_format=evolution.input_format or INPUT_FORMATS[0])
    return _DEPTH.format(method=method, instruction=text)


def equality_prompt(first: str, second: str) -> str:
    """The paper's equality check: is ``second`` (the evolved prompt) equal to ``first``?"""
    return _EQUALITY.format(first=first.strip(), second=second.strip())


def evolution_request(
    evolution: Evolution, instruction: str, *, max_tokens: int, temperature: float, top_p: float
) -> Request:
    return Request.chat(
        evolution_prompt(evolution, instruction),
        system=ANSWER_SYSTEM,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
    )


def equality_request(first: str, second: str, *, max_tokens: int) -> Request:
    """Temperature 0: a verdict, not a sample."""
    return Request.chat(
        equality_prompt(first, second),
        system=ANSWER_SYSTEM,
        max_tokens=max_tokens,
        temperature=0.0,
        top_p=1.0,
    )


def answer_request(
    instruction: str, *, max_tokens: int, temperature: float, top_p: float
) -> Request:
    return Request.chat(
        instruction.strip(),
        system=ANSWER_SYSTEM,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
    )

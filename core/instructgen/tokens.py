"""Token counts without a tokenizer: a cautious bound for budgets and an expected figure for
cost estimates. Both the dispatcher and batch mode reserve budget with ``prompt_tokens``."""

from __future__ import annotations

from collections.abc import Callable

from instructgen.engine_contract import Request

__all__ = ["TokenCounter", "estimate_tokens", "expected_prompt_tokens", "prompt_tokens"]

TokenCounter = Callable[[str], int]
"""Counts the tokens of a text as a provider bills them (``Engine.token_counter``)."""


def estimate_tokens(text: str) -> int:
    """A conservative token estimate without a tokenizer: about 3 characters a token."""
    return max(1, (len(text) + 2) // 3)


def prompt_tokens(request: Request) -> int:
    """The cautious prompt-token count of ``request`` (``estimate_tokens`` per message plus
    4 for each chat message's framing): what budgets reserve."""
    if request.prompt is not None:
        return estimate_tokens(request.prompt)
    return sum(estimate_tokens(m.content) + 4 for m in request.messages)


def expected_prompt_tokens(request: Request, count: TokenCounter | None = None) -> int:
    """The prompt tokens ``request`` is expected to cost.

    With ``count`` (the engine's own tokenizer, ``Engine.token_counter``): the text's tokens,
    and for chat requests 4 a message (its role and framing) plus 3 priming the reply, as
    OpenAI's cookbook counts them ("How to count tokens with tiktoken"). Without: about 4
    characters a token in English text (OpenAI's rule of thumb, "What are tokens and how to
    count them"; on the Self-Instruct prompts o200k_base gives 3.9-4.3 characters a token),
    plus 4 a message. ``estimate_tokens`` (3 characters a token) is the cautious bound for
    budgets."""
    if count is not None:
        if request.prompt is not None:
            return max(1, count(request.prompt))
        return sum(count(m.content) + 4 for m in request.messages) + 3
    if request.prompt is not None:
        return max(1, (len(request.prompt) + 3) // 4)
    return sum(max(1, (len(m.content) + 3) // 4) + 4 for m in request.messages)

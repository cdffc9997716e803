"""Token counts without a tokenizer: a cautious bound for budgets and an expected figure for
cost estimates. Both the dispatcher and batch mode reserve budget with ``prompt_tokens``."""

from __future__ import annotations

from instructgen.engine_contract import Request

__all__ = ["estimate_tokens", "expected_prompt_tokens", "prompt_tokens"]


def estimate_tokens(text: str) -> int:
    """A conservative token estimate without a tokenizer: about 3 characters a token."""
    return max(1, (len(text) + 2) // 3)


def prompt_tokens(request: Request) -> int:
    """The cautious prompt-token count of ``request`` (``estimate_tokens`` per message plus
    4 for each chat message's framing): what budgets reserve."""
    if request.prompt is not None:
        return estimate_tokens(request.prompt)
    return sum(estimate_tokens(m.content) + 4 for m in request.messages)


def expected_prompt_tokens(request: Request) -> int:
    """The prompt tokens ``request`` is expected to cost: about 4 characters a token in
    English text (OpenAI's rule of thumb, "What are tokens and how to count them"; measured on
    the Self-Instruct prompts: 4.0-4.2 characters a word-piece), plus 4 for each chat message's
    framing. ``estimate_tokens`` (3 characters a token) is the cautious bound for budgets."""
    if request.prompt is not None:
        return max(1, (len(request.prompt) + 3) // 4)
    return sum(max(1, (len(m.content) + 3) // 4) + 4 for m in request.messages)

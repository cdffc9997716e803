"""What models put around the content of a reply, which every reply parser removes first."""

from __future__ import annotations

import re

__all__ = ["strip_thinking"]

_THINK = re.compile(r"<(think|thinking|reasoning)>.*?(?:</\1>|\Z)", re.S | re.I)


def strip_thinking(text: str) -> str:
    """The reply without reasoning blocks (``<think>...</think>``, ``<thinking>``,
    ``<reasoning>``, or an unclosed one cut off by the token limit) that reasoning models
    served by local servers put in the content."""
    return _THINK.sub("", text) if "<" in text else text

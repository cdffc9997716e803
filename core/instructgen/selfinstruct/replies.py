"""Reading Self-Instruct instance replies as chat models write them, and counting the ones in
which no instance was found (run.json ``unparsed_instance_replies``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from instructgen.reply_text import strip_thinking
from instructgen.selfinstruct import prompts

__all__ = ["InstanceReplies", "normalise_instance_reply"]

_EXCERPTS = 5
_BOLD_LABEL = re.compile(
    r"(?:\*\*|__)\s*(Example\s*\d+|Input|Output|Class label)\s*(:?)\s*(?:\*\*|__)", re.I
)
_EXAMPLE_COLON = re.compile(r"^(\s*#*\s*Example\s?\d+)\s*:[ \t]*$", re.I | re.M)


def normalise_instance_reply(text: str) -> str:
    """What the paper's parser does not know: a reasoning model's ``<think>`` block (dropped),
    markdown labels (``**Input:**`` → ``Input:``, ``### Example 1:`` → ``Example 1``)."""
    text = strip_thinking(text)
    text = _BOLD_LABEL.sub(lambda m: m.group(1) + m.group(2), text)
    text = _EXAMPLE_COLON.sub(lambda m: m.group(1).lstrip(" #"), text)
    return text


@dataclass
class InstanceReplies:
    """Parses instance replies and keeps count of those that gave no instance."""

    replies: int = 0
    unparsed: int = 0
    excerpts: list[str] = field(default_factory=list)

    def parse(self, text: str, is_classification: bool) -> list[tuple[str, str]]:
        pairs = prompts.parse_instances(normalise_instance_reply(text), is_classification)
        self.replies += 1
        if not any(out.strip() for _, out in pairs):
            self.unparsed += 1
            if len(self.excerpts) < _EXCERPTS:
                self.excerpts.append(text.strip()[:300])
        return pairs

    def to_report(self) -> dict[str, Any]:
        return {"replies": self.replies, "unparsed": self.unparsed, "excerpts": self.excerpts}

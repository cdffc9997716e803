"""The Self-Instruct heuristic instruction filters, as separate, configurable filters."""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from typing import Any

from instructgen import Filter

__all__ = ["BlacklistFilter", "LeadingCharFilter", "LengthFilter", "WriteAProgramFilter"]

DEFAULT_BLACKLIST = (
    "image",
    "images",
    "graph",
    "graphs",
    "picture",
    "pictures",
    "file",
    "files",
    "map",
    "maps",
    "draw",
    "plot",
    "go to",
)


class BlacklistFilter(Filter):
    """Drop instructions naming things a text model cannot do, matched as WHOLE words,
    case-insensitively ("paragraph" is not "graph"). ``words`` replaces, ``extra`` extends."""

    name = "blacklist"

    def __init__(
        self, words: Iterable[str] | None = None, extra: Iterable[str] = (), **options: Any
    ) -> None:
        super().__init__(**options)
        self.words = tuple(words if words is not None else DEFAULT_BLACKLIST) + tuple(extra)
        alternatives = "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in self.words)
        self._re = re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE) if self.words else None

    def check(self, item: Any) -> str | None:
        if self._re is None:
            return None
        m = self._re.search(str(item))
        return f"blacklisted word {m.group(0)!r}" if m else None


class LengthFilter(Filter):
    """Keep instructions of more than ``min_words`` and at most ``max_words`` words."""

    name = "length"

    def __init__(self, min_words: int = 3, max_words: int = 150, **options: Any) -> None:
        super().__init__(**options)
        self.min_words, self.max_words = min_words, max_words

    def check(self, item: Any) -> str | None:
        n = len(str(item).split())
        if n <= self.min_words:
            return f"{n} words (needs more than {self.min_words})"
        if n > self.max_words:
            return f"{n} words (at most {self.max_words})"
        return None


class LeadingCharFilter(Filter):
    """Drop instructions starting with punctuation, or (``allow_non_ascii=False``, the paper's
    rule) with a non-ASCII character. Set ``allow_non_ascii=True`` for other languages."""

    name = "leading-char"

    def __init__(self, allow_non_ascii: bool = False, **options: Any) -> None:
        super().__init__(**options)
        self.allow_non_ascii = allow_non_ascii

    def check(self, item: Any) -> str | None:
        text = str(item)
        if not text:
            return "empty"
        if text[0] in string.punctuation:
            return f"starts with punctuation {text[0]!r}"
        if not self.allow_non_ascii and not text[0].isascii():
            return f"starts with non-ASCII {text[0]!r}"
        return None


class WriteAProgramFilter(Filter):
    """Drop instructions starting with "Write a program" (ambiguous: run it or write it?)."""

    name = "write-a-program"

    def check(self, item: Any) -> str | None:
        return 'starts with "Write a program"' if str(item).startswith("Write a program") else None

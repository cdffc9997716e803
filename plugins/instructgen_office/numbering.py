"""Word's automatic list numbers ("1.", "a)", "iv.", "•"), which python-docx's
``paragraph.text`` leaves out: computed from numbering.xml the way Word counts.

A paragraph is numbered by its own ``w:numPr`` or its style's (through ``w:basedOn``): a list
(``w:numId``, 0 = none) and a level (``w:ilvl``). The list points to an abstract definition
whose levels give the format (decimal, lowerLetter, upperRoman, bullet, ...), the label
pattern (``%1.%2.``), the start value and when the level restarts (after any shallower level,
or ``w:lvlRestart``). Lists sharing a definition share its counters, as in Word, unless a list
restarts a level with ``w:startOverride`` (what "Restart at 1" writes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Numbering"]

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_VAL = f"{_W}val"
# Bullets drawn from symbol fonts are private-use characters: the glyph a reader sees.
_BULLETS = {"\uf0b7": "•", "\uf0a7": "▪", "\uf0d8": "➢", "\uf076": "❖", "\uf0fc": "✓", "o": "◦"}
_ROMAN = (
    (1000, "m"), (900, "cm"), (500, "d"), (400, "cd"), (100, "c"), (90, "xc"),
    (50, "l"), (40, "xl"), (10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i"),
)  # fmt: skip


@dataclass
class _Level:
    fmt: str = "decimal"
    text: str = ""
    start: int = 1
    restart: int | None = None  # w:lvlRestart: restart after this (1-based) level; 0 never
    suffix: str = " "
    legal: bool = False  # w:isLgl: every number of the label in decimal
    style: str | None = None  # w:pStyle: the paragraph style this level belongs to


@dataclass
class _List:
    abstract: str
    starts: dict[int, int] = field(default_factory=dict)  # w:lvlOverride/w:startOverride
    levels: dict[int, _Level] = field(default_factory=dict)  # w:lvlOverride/w:lvl
    seen: bool = False


def _int(el: Any, default: int | None = None) -> int | None:
    if el is None:
        return default
    try:
        return int(el.get(_VAL))
    except (TypeError, ValueError):
        return default


def _level(lvl: Any) -> _Level:
    out = _Level()
    fmt = lvl.find(f"{_W}numFmt")
    if fmt is not None and fmt.get(_VAL):
        out.fmt = fmt.get(_VAL)
    text = lvl.find(f"{_W}lvlText")
    if text is not None:
        out.text = text.get(_VAL) or ""
    out.start = _int(lvl.find(f"{_W}start"), 1) or 0
    out.restart = _int(lvl.find(f"{_W}lvlRestart"))
    suff = lvl.find(f"{_W}suff")
    if suff is not None and suff.get(_VAL) == "nothing":
        out.suffix = ""
    out.legal = lvl.find(f"{_W}isLgl") is not None
    style = lvl.find(f"{_W}pStyle")
    out.style = style.get(_VAL) if style is not None else None
    return out


def _letters(n: int) -> str:
    # Word: a..z, then aa..zz, then aaa.. (the letter repeated, not a base-26 count)
    if n <= 0:
        return str(n)
    return chr(ord("a") + (n - 1) % 26) * ((n - 1) // 26 + 1)


def _roman(n: int) -> str:
    if not 0 < n < 4000:
        return str(n)
    out = ""
    for value, digits in _ROMAN:
        while n >= value:
            out, n = out + digits, n - value
    return out


def _format(n: int, fmt: str) -> str:
    if fmt == "lowerLetter":
        return _letters(n)
    if fmt == "upperLetter":
        return _letters(n).upper()
    if fmt == "lowerRoman":
        return _roman(n)
    if fmt == "upperRoman":
        return _roman(n).upper()
    if fmt == "decimalZero":
        return f"{n:02d}"
    if fmt == "ordinal":
        suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
        return f"{n}{suffix}"
    if fmt == "none":
        return ""
    return str(n)  # decimal, and the formats of other scripts read as their value


class Numbering:
    """The list labels of one document part's paragraphs, in reading order: call ``label``
    for every paragraph, in order (the counters advance as Word's do)."""

    def __init__(self, document: Any) -> None:
        self._abstract: dict[str, dict[int, _Level]] = {}
        self._lists: dict[str, _List] = {}
        self._counters: dict[str, dict[int, int]] = {}
        self._style_numpr: dict[str, tuple[str | None, int | None]] = {}
        try:
            root = document.part.numbering_part.element
        except (KeyError, NotImplementedError, AttributeError):
            return
        for abstract in root.iter(f"{_W}abstractNum"):
            levels = {
                int(lvl.get(f"{_W}ilvl", "0")): _level(lvl) for lvl in abstract.iter(f"{_W}lvl")
            }
            self._abstract[abstract.get(f"{_W}abstractNumId", "")] = levels
        for num in root.iter(f"{_W}num"):
            ref = num.find(f"{_W}abstractNumId")
            entry = _List(ref.get(_VAL, "") if ref is not None else "")
            for override in num.iter(f"{_W}lvlOverride"):
                ilvl = int(override.get(f"{_W}ilvl", "0"))
                start = _int(override.find(f"{_W}startOverride"))
                if start is not None:
                    entry.starts[ilvl] = start
                lvl = override.find(f"{_W}lvl")
                if lvl is not None:
                    entry.levels[ilvl] = _level(lvl)
            self._lists[num.get(f"{_W}numId", "")] = entry
        self._styles = document.styles

    def _from_style(self, style_id: str | None) -> tuple[str | None, int | None]:
        """numId and ilvl a paragraph style gives (its own or a base style's)."""
        num_id: str | None = None
        ilvl: int | None = None
        seen: set[str] = set()
        while style_id and style_id not in seen:
            seen.add(style_id)
            if style_id in self._style_numpr:
                cached = self._style_numpr[style_id]
                num_id, ilvl = num_id or cached[0], ilvl if ilvl is not None else cached[1]
                break
            el = self._style_element(style_id)
            if el is None:
                break
            numpr = el.find(f"{_W}pPr/{_W}numPr")
            if numpr is not None:
                num_id = num_id or _val(numpr.find(f"{_W}numId"))
                if ilvl is None:
                    ilvl = _int(numpr.find(f"{_W}ilvl"))
            based = el.find(f"{_W}basedOn")
            style_id = based.get(_VAL) if based is not None else None
        return num_id, ilvl

    def _style_element(self, style_id: str) -> Any:
        for style in self._styles.element.iter(f"{_W}style"):
            if style.get(f"{_W}styleId") == style_id:
                return style
        return None

    def label(self, p: Any) -> str:
        """The label Word shows before paragraph ``p`` (a ``w:p`` element) with its suffix
        ("1. ", "• "), or "" when it is not a list item."""
        if not self._lists:
            return ""
        ppr = p.find(f"{_W}pPr")
        numpr = ppr.find(f"{_W}numPr") if ppr is not None else None
        num_id = _val(numpr.find(f"{_W}numId")) if numpr is not None else None
        ilvl = _int(numpr.find(f"{_W}ilvl")) if numpr is not None else None
        style_el = ppr.find(f"{_W}pStyle") if ppr is not None else None
        style_id = style_el.get(_VAL) if style_el is not None else None
        if num_id is None:
            key = style_id or ""
            if key not in self._style_numpr:
                self._style_numpr[key] = self._from_style(style_id)
            num_id, style_ilvl = self._style_numpr[key]
            ilvl = ilvl if ilvl is not None else style_ilvl
        if not num_id or num_id == "0" or num_id not in self._lists:
            return ""
        entry = self._lists[num_id]
        levels = {**self._abstract.get(entry.abstract, {}), **entry.levels}
        if ilvl is None:  # a style-numbered paragraph: the level that names its style
            ilvl = next((i for i, lv in levels.items() if lv.style == style_id), 0)
        if ilvl not in levels:
            return ""
        counters = self._counters.setdefault(entry.abstract, {})
        if not entry.seen:  # "Restart at": this list starts its own count at these levels
            entry.seen = True
            for restarted in entry.starts:
                counters.pop(restarted, None)
        level = levels[ilvl]
        start = entry.starts.get(ilvl, level.start)
        counters[ilvl] = counters[ilvl] + 1 if ilvl in counters else start
        for deeper in [k for k in counters if k > ilvl]:
            restart = levels[deeper].restart if deeper in levels else None
            if ilvl < (deeper if restart is None else restart):
                del counters[deeper]
        if level.fmt == "bullet":
            text = _BULLETS.get(level.text, level.text)
            if any("\ue000" <= c <= "\uf8ff" for c in text) or not text.strip():
                text = "•"
        else:

            def number(m: re.Match[str]) -> str:
                k = int(m.group(1)) - 1
                lv = levels.get(k, _Level())
                value = counters.get(k, entry.starts.get(k, lv.start))
                return _format(value, "decimal" if level.legal else lv.fmt)

            text = re.sub(r"%([1-9])", number, level.text)
        return text + level.suffix if text.strip() else ""


def _val(el: Any) -> str | None:
    return el.get(_VAL) if el is not None else None

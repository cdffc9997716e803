"""Reading Evol-Instruct replies as models write them.

An evolution reply should be the evolved prompt alone; models add a preamble ("Here is the
rewritten prompt:"), echo the marker ("#Rewritten Prompt#:"), wrap the prompt in quotes, bold or
a code fence, and close with a remark on what they changed. ``parse_evolved`` takes that away
and nothing else: template words left inside the prompt itself are the elimination step's
business (``elimination.copies_template``), not the parser's.

An equality reply should be "Equal" or "Not Equal"; ``parse_equality`` reads the verdict in
"**Not Equal**", "The two prompts are not equal." or "Equal. The second prompt only ...".
"""

from __future__ import annotations

import re

__all__ = ["clean_reply", "parse_equality", "parse_evolved"]

_THINK = re.compile(r"<(think|thinking|reasoning)>.*?(?:</\1>|\Z)", re.S | re.I)

# "#Rewritten Prompt#:", "**Rewritten Prompt:**", "## Created Prompt", "New prompt:" ... on a
# line of its own or before the prompt on the same line.
_MARKER = re.compile(
    r"""^[ \t>]*(?:[#*_`]+[ \t]*)?
        (?:the[ \t]+)?(?:rewritten|created|new|evolved|revised|more[ \t]+complex)[ \t]+
        (?:prompt|instruction|version)
        [ \t]*[#*_`]*[ \t]*(?::[ \t]*[#*_`]*|$)[ \t]*""",
    re.I | re.M | re.X,
)
# An echoed "#The Given Prompt#: ..." block before the marker.
_GIVEN = re.compile(r"^[ \t>]*[#*_`]*[ \t]*(?:the[ \t]+)?given[ \t]+prompt\b", re.I | re.M)

_PREAMBLE = re.compile(
    r"""^(?:sure|certainly|of[ \t]course|okay|ok|absolutely|great|alright
        |here(?:'s|[ \t]is|[ \t]are)?[ \t]+(?:it|you[ \t]go|you[ \t]are|it[ \t]is)\b)""",
    re.I | re.X,
)
_ANNOUNCE = re.compile(
    r"""\b(?:rewritten|created|new|revised|evolved|complex|harder|updated|modified)[ \t]+
        (?:prompt|version|instruction)\b""",
    re.I | re.X,
)
_CLOSING = re.compile(
    r"""^(?:\(?note\b|explanation\b|changes?\b|this[ \t]+(?:rewritten|new|created|revised|
        version|prompt|adds|version)|the[ \t]+(?:rewritten|new|created|revised)[ \t]+prompt
        |i[ \t]+(?:added|have[ \t]added|replaced|included)|in[ \t]+this[ \t]+(?:version|
        rewritten)|by[ \t]+adding|let[ \t]+me[ \t]+know|hope[ \t]+this)""",
    re.I | re.X,
)
_FENCE = re.compile(r"^```[\w-]*[ \t]*\n(.*?)\n```[ \t]*$", re.S)
_QUOTES = (('"', '"'), ("“", "”"), ("'", "'"), ("‘", "’"), ("«", "»"))
_WRAP = ("**", "__", "*", "_", "`")


def clean_reply(text: str) -> str:
    """The reply without reasoning blocks (``<think>…</think>``, also an unclosed one cut off
    by the token limit) and surrounding whitespace."""
    if "<" in text:
        text = _THINK.sub("", text)
    return text.strip()


def _unwrap(text: str) -> str:
    """Quotes, bold or backticks around the whole prompt, a blockquote, a fence around all of it."""
    changed = True
    while changed and text:
        changed = False
        m = _FENCE.match(text)
        if m:
            text, changed = m.group(1).strip(), True
            continue
        lines = text.split("\n")
        if all(line.lstrip().startswith(">") for line in lines if line.strip()):
            text = "\n".join(re.sub(r"^\s*>\s?", "", line) for line in lines).strip()
            changed = True
            continue
        for left, right in _QUOTES:
            inner = text[len(left) : -len(right)]
            if (
                len(text) > len(left) + len(right)
                and text.startswith(left)
                and text.endswith(right)
                and left not in inner
                and right not in inner
            ):
                text, changed = inner.strip(), True
                break
        if changed:
            continue
        for mark in _WRAP:
            inner = text[len(mark) : -len(mark)]
            if (
                len(text) > 2 * len(mark)
                and text.startswith(mark)
                and text.endswith(mark)
                and mark not in inner
            ):
                text, changed = inner.strip(), True
                break
    return text


def _announces(line: str) -> bool:
    return bool(_PREAMBLE.match(line) or _ANNOUNCE.search(line)) and len(line.split()) <= 20


def _drop_preamble(paragraphs: list[str]) -> list[str]:
    """A first paragraph that only announces the prompt ("Sure! Here is the rewritten
    prompt:", "Rewritten version:") goes, when something follows it."""
    while len(paragraphs) > 1:
        first = paragraphs[0].strip()
        words = len(first.split())
        if _announces(first) and ((words <= 20 and first.endswith(":")) or words <= 6):
            paragraphs = paragraphs[1:]
            continue
        break
    return paragraphs


def _drop_closing(paragraphs: list[str]) -> list[str]:
    """Closing remarks after the prompt ("This rewritten prompt adds ...", "Note: ...")."""
    while len(paragraphs) > 1 and _CLOSING.match(_unwrap(paragraphs[-1].strip()).lstrip("*_( ")):
        paragraphs = paragraphs[:-1]
    return paragraphs


def parse_evolved(text: str) -> str | None:
    """The evolved prompt in an evolution reply, or ``None`` when the reply holds none."""
    text = clean_reply(text).replace("\r\n", "\n")
    if not text:
        return None
    text = _unwrap(text)
    # The marker echoed: the prompt is what follows the last one (a reply that repeated the
    # given prompt first keeps only the rewritten one).
    marks = list(_MARKER.finditer(text))
    if marks:
        after = text[marks[-1].end() :].strip()
        if after:
            text = after
    elif _GIVEN.match(text):
        return None  # only the given prompt came back, under its marker
    paragraphs = [p for p in re.split(r"\n[ \t]*\n", text) if p.strip()]
    paragraphs = _drop_closing(_drop_preamble(paragraphs))
    text = _unwrap("\n\n".join(p.strip("\n") for p in paragraphs).strip())
    # A one-line preamble that ended with a colon on the same paragraph as the prompt.
    first, _, rest = text.partition("\n")
    if rest.strip() and first.rstrip().endswith(":") and _announces(first.strip()):
        text = _unwrap(rest.strip())
    return text or None


_VERDICT = re.compile(r"\b(not[\s_*]+equal|unequal|inequal|equal)\b", re.I)
_NEGATED = re.compile(r"\b(?:not|no)\b[^.\n]{0,20}$", re.I)


def parse_equality(text: str) -> bool | None:
    """``True`` for "Equal", ``False`` for "Not Equal", ``None`` when the reply says neither.

    The first verdict in the reply counts ("Not Equal. Equal constraints, but ..." is not
    equal); "they are not exactly equal" reads as not equal."""
    text = clean_reply(text)
    plain = re.sub(r"[*_`#>\"“”]", " ", text)
    m = _VERDICT.search(plain)
    if m is None:
        if re.match(r"\s*(?:no|different)\b", plain, re.I):
            return False
        if re.match(r"\s*(?:yes|same|identical)\b", plain, re.I):
            return True
        return None
    word = m.group(1).lower()
    if word != "equal":
        return False
    # "not exactly equal", "are not really equal": a negation just before the word.
    return not _NEGATED.search(plain[: m.start()])

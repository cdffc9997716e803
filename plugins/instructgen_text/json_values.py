"""JSON (and JSON Lines) as the text a person reads in it: the text values, with the keys as
light context, not one ``path.to[3].key: value`` line per leaf.

- A record (an object) becomes one line of its short fields (``name: Garden Trowel; price:
  12.5``); a longer text value (a sentence, a paragraph) gets a line of its own, after its key
  unless the key only says "text" (``text``, ``content``, ``body``, ...).
- A list of records states once what all of them share (``filetype: text/html``) and then
  each record without it.
- What no reader reads is left out: nulls, empty strings, identifiers that are only hex
  digits or UUIDs, base64 blobs, a value repeated inside the same record (HTML markup
  whose text is already there), long runs of numbers (``embedding: 1536 numbers``).
- Size caps for huge structures: a file over ``MAX_TREE_BYTES``, or nested too deeply to
  walk, is not built into a tree: its string values are read in order straight from the
  source (keys and numbers dropped).
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

__all__ = ["MAX_TREE_BYTES", "json_text"]

MAX_TREE_BYTES = 20_000_000  # a parsed tree takes 5-10x the file's size in memory
_MAX_NUMBERS = 20  # a longer list of numbers is summarised by its length
_GENERIC_KEYS = frozenset({"text", "content", "body", "value", "message", "contents"})
_ID = re.compile(r"[0-9a-fA-F]{16,}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                 r"[0-9a-fA-F]{12}")  # fmt: skip
_BLOB = re.compile(r"[A-Za-z0-9+/=_-]{200,}")
_TAG = re.compile(r"<[^<>]{1,500}>")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"\s*(:?)')


def json_text(text: str, meta: dict[str, Any], *, lines: bool = False) -> str:
    """The readable text of a JSON document (``lines=True``: JSON Lines, one value a line).
    Records in ``meta`` how it was read (``json``: ``records`` / ``strings`` / ``invalid, read
    as text``)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_TREE_BYTES:
        meta["json"] = f"over {MAX_TREE_BYTES // 1_000_000} MB: string values only"
        return _strings_only(text)
    try:
        if lines:
            rows = [ln for ln in text.splitlines() if ln.strip()]
            obj: Any = [json.loads(ln) for ln in rows]
        else:
            obj = json.loads(text)
    except RecursionError:
        meta["json"] = "nested too deeply: string values only"
        return _strings_only(text)
    except ValueError:  # JSONDecodeError included
        meta["json"] = "invalid, read as text"
        return text
    try:
        out = "\n".join(_render(obj))
    except RecursionError:
        meta["json"] = "nested too deeply: string values only"
        return _strings_only(text)
    meta["json"] = "records"
    return out


def _strings_only(text: str) -> str:
    """The string values of JSON source in order (keys, numbers, ids and blobs left out),
    without building the tree."""
    out: list[str] = []
    for m in _STRING.finditer(text):
        if m.group(2):  # a key
            continue
        try:
            value = json.loads(f'"{m.group(1)}"')
        except json.JSONDecodeError:
            continue
        value = _clean(value)
        if value:
            out.append(value)
    return "\n".join(out)


def _clean(value: str) -> str:
    """A string as read: markup reduced to its text, blanks collapsed; "" for what nobody
    reads (ids, blobs)."""
    s = value.strip()
    if not s or _ID.fullmatch(s) or _BLOB.fullmatch(s):
        return ""
    if _is_markup(s):
        s = html.unescape(_TAG.sub(" ", s))
    return re.sub(r"[ \t\r\f\v]+", " ", s).strip()


def _is_markup(s: str) -> bool:
    return "<" in s and _TAG.search(s) is not None


def _same(s: str) -> str:
    return " ".join(s.split())


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _clean(value)
    if value is None:
        return ""
    return str(value)


def _is_prose(s: str) -> bool:
    return len(s) >= 60 or len(s.split()) >= 4 or "\n" in s


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, (dict, list))


def _plain_strings(value: Any, out: set[str]) -> set[str]:
    """Every string in a value that is not markup, whitespace-normalised."""
    if isinstance(value, dict):
        for v in value.values():
            _plain_strings(v, out)
    elif isinstance(value, list):
        for v in value:
            _plain_strings(v, out)
    elif isinstance(value, str) and not _is_markup(value):
        out.add(_same(value))
    return out


def _flat(obj: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """A record's scalar fields by key path, nested objects opened (lists kept whole)."""
    out: dict[tuple[str, ...], Any] = {}
    for k, v in obj.items():
        path = (*prefix, str(k))
        if isinstance(v, dict):
            out.update(_flat(v, path))
        else:
            out[path] = v
    return out


class _Renderer:
    """Lines for one top-level value; ``skip`` holds the key paths stated once already."""

    def __init__(self, root: Any) -> None:
        self.plain = _plain_strings(root, set())
        self.seen: set[str] = set()

    def value(
        self, value: Any, path: tuple[str, ...], skip: frozenset[tuple[str, ...]]
    ) -> list[str]:
        if isinstance(value, dict):
            return self.record(value, path, skip)
        if isinstance(value, list):
            return self.list(value, path)
        s = self.string(value)
        return [s] if s else []

    def string(self, value: Any) -> str:
        s = _scalar(value)
        if not s or _same(s) in self.seen:
            return ""
        if isinstance(value, str) and _is_markup(value) and _same(s) in self.plain:
            return ""  # markup whose text the record also has plainly (text_as_html)
        self.seen.add(_same(s))
        return s

    def record(
        self, obj: dict[str, Any], path: tuple[str, ...], skip: frozenset[tuple[str, ...]]
    ) -> list[str]:
        short: list[str] = []
        long: list[str] = []
        for k, v in obj.items():
            key = str(k)
            sub_path = (*path, key)
            if sub_path in skip:
                continue
            generic = key.lower() in _GENERIC_KEYS
            if _is_scalar(v):
                s = self.string(v)
                if not s:
                    continue
                if generic:
                    long.append(s)
                elif _is_prose(s):
                    long.append(f"{key}: {s}")
                else:
                    short.append(f"{key}: {s}")
                continue
            sub = self.value(v, sub_path, skip)
            if not sub:
                continue
            if len(sub) == 1 and not _is_prose(sub[0]) and not generic:
                short.append(f"{key}: {sub[0]}")
            elif generic:
                long.extend(sub)
            else:
                long.append(f"{key}: {sub[0]}")
                long.extend(sub[1:])
        head = ["; ".join(short)] if short else []
        return head + long

    def list(self, items: list[Any], path: tuple[str, ...]) -> list[str]:
        if all(_is_scalar(v) for v in items):
            numbers = [v for v in items if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if len(numbers) > _MAX_NUMBERS and len(numbers) == len(items):
                return [f"{len(numbers)} numbers"]
            values = [s for s in map(_scalar, items) if s]
            if any(_is_prose(s) for s in values):
                return [s for s in map(self.string, items) if s]
            return [", ".join(values)] if values else []
        records = [v for v in items if isinstance(v, dict)]
        out: list[str] = []
        skip: frozenset[tuple[str, ...]] = frozenset()
        if len(records) >= 3 and len(records) == len(items):
            # what every record says the same way is stated once, before them
            flats = [_flat(r) for r in records]
            shared = {
                p: v
                for p, v in flats[0].items()
                if (_is_scalar(v) or len(json.dumps(v)) < 200)
                and all(p in f and f[p] == v for f in flats[1:])
            }
            if shared:
                self.seen = set()
                out.extend(self.record(_nest(shared), (), frozenset()))
                skip = frozenset(shared)
        blocks = []
        for v in items:
            if isinstance(v, dict):
                self.seen = set()  # repeats are dropped within a record, not across them
                blocks.append(self.record(v, (), skip))
            else:
                blocks.append(self.value(v, path, frozenset()))
        multi = any(len(b) > 1 for b in blocks)
        for block in blocks:
            if not block:
                continue
            if multi and out:
                out.append("")  # a blank line between records of several lines
            out.extend(block)
        return out


def _nest(flat: dict[tuple[str, ...], Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, v in flat.items():
        node = out
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = v
    return out


def _render(value: Any) -> list[str]:
    return _Renderer(value).value(value, (), frozenset())

"""HTML and XHTML (web pages, e-mail bodies, e-book chapters) to their visible text."""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Any

from instructgen import decode_bytes
from instructgen_office._text import join

__all__ = ["html_to_text", "read_html"]

_BLOCK = {
    "address", "article", "aside", "blockquote", "br", "caption", "dd", "div", "dl", "dt",
    "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody", "td", "tfoot",
    "th", "thead", "title", "tr", "ul",
}  # fmt: skip


def _decode_markup(data: bytes) -> str:
    """Bytes of an HTML/XHTML file to text: the charset the document declares (when it has no
    BOM and is not UTF-16/32), else what core's ``decode_bytes`` detects."""
    head = data[:4000]
    if b"\x00" not in head and not head.startswith(codecs.BOM_UTF8):
        m = re.search(rb"""charset\s*=\s*["']?([A-Za-z0-9._-]+)""", head)
        if m:
            try:
                return data.decode(m.group(1).decode("ascii"))
            except (LookupError, UnicodeDecodeError):
                pass
    try:
        return decode_bytes(data)[0]
    except (ValueError, UnicodeDecodeError):
        return data.decode("latin-1")


def html_to_text(markup: str | bytes) -> str:
    """Visible text of an HTML or XHTML document, one block element per line."""
    import lxml.etree
    import lxml.html

    text = _decode_markup(markup) if isinstance(markup, bytes) else markup
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text)  # lxml refuses str with an XML declaration
    if not text.strip():
        return ""
    try:
        root = lxml.html.document_fromstring(text)
    except (lxml.etree.ParserError, ValueError):
        return ""
    for bad in root.xpath("//script|//style|//noscript|//template|//svg"):
        bad.drop_tree()
    for el in root.iter():
        if not isinstance(el.tag, str):  # comments, processing instructions
            if el.getparent() is not None:
                el.drop_tree()
            continue
        tag = el.tag.rsplit("}", 1)[-1].lower()
        if tag == "img" and el.get("alt", "").strip():
            el.tail = f" {el.get('alt').strip()}\n" + (el.tail or "")
        elif tag in ("td", "th"):
            el.tail = " | " + (el.tail or "")
        elif tag in _BLOCK:
            el.tail = "\n" + (el.tail or "")
            if tag != "br":
                el.text = "\n" + (el.text or "")
    raw = root.text_content()
    lines = (re.sub(r"[ \t\r\f\v\u00a0]+", " ", line).strip(" |") for line in raw.split("\n"))
    return join(lines)


def read_html(path: Path) -> tuple[str, dict[str, Any]]:
    return html_to_text(path.read_bytes()), {}

"""OpenDocument text (.odt): paragraphs, headings and table rows from content.xml."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from instructgen_office._text import join, row

__all__ = ["read_odt"]

_ODF_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_ODF_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"


def _paragraph(el: Any) -> str:
    out: list[str] = [el.text or ""]
    for child in el:
        tag = child.tag.rsplit("}", 1)[-1] if isinstance(child.tag, str) else ""
        if tag == "s":
            out.append(" " * int(child.get(f"{{{_ODF_TEXT}}}c", "1")))
        elif tag == "tab":
            out.append("\t")
        elif tag == "line-break":
            out.append("\n")
        elif tag not in ("note", "annotation"):
            out.append(_paragraph(child))
        out.append(child.tail or "")
    return "".join(out)


def read_odt(path: Path) -> tuple[str, dict[str, Any]]:
    import lxml.etree

    with zipfile.ZipFile(path) as z:
        root = lxml.etree.fromstring(z.read("content.xml"))
    paragraph_tags = {f"{{{_ODF_TEXT}}}p", f"{{{_ODF_TEXT}}}h"}
    row_tag = f"{{{_ODF_TABLE}}}table-row"
    parts: list[str] = []
    for el in root.iter(row_tag, *paragraph_tags):
        if el.tag == row_tag:
            cells = el.findall(f"{{{_ODF_TABLE}}}table-cell")
            parts.append(row(join(_paragraph(p) for p in c.iter(*paragraph_tags)) for c in cells))
        elif not any(a.tag in paragraph_tags or a.tag == row_tag for a in el.iterancestors()):
            parts.append(_paragraph(el))
    return join(parts), {}

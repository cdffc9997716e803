"""Word .docx through python-docx: body paragraphs (with their list numbers) and tables in
order, text boxes, headers and footers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from instructgen_office._text import join, row
from instructgen_office.numbering import Numbering

__all__ = ["read_docx"]

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"


def read_docx(path: Path) -> tuple[str, dict[str, Any]]:
    import docx
    from docx.table import Table

    document = docx.Document(str(path))
    tables = 0
    body_numbers, margin_numbers = Numbering(document), Numbering(document)

    def blocks(container: Any, numbers: Numbering) -> Iterator[str]:
        nonlocal tables
        for block in container.iter_inner_content():  # paragraphs and tables in order
            if isinstance(block, Table):
                tables += 1
                yield join(_table_row(r, numbers) for r in block.rows)
            else:
                label = numbers.label(block._p)  # "1. ", "a) ", "• ": Word's list numbers
                text = block.text
                yield join([label + text if text.strip() else "", *_text_boxes(block._p)])

    seen: set[str] = set()

    def headers_footers(*kinds: str) -> Iterator[str]:
        for section in document.sections:
            for kind in kinds:
                part = getattr(section, kind)
                if part.is_linked_to_previous:
                    continue
                text = join(blocks(part, margin_numbers))
                if text and text not in seen:  # the same header on every section: once
                    seen.add(text)
                    yield text

    parts = [
        *headers_footers("first_page_header", "header", "even_page_header"),
        *blocks(document, body_numbers),
        *headers_footers("first_page_footer", "footer", "even_page_footer"),
    ]
    return join(parts), {"tables": tables}


def _text_boxes(p: Any) -> list[str]:
    """The text of the text boxes anchored in a paragraph (which python-docx's
    ``paragraph.text`` leaves out). Word writes each box twice, as a DrawingML shape and as a
    VML copy under ``mc:Fallback``: the copy is skipped, as are boxes nested in a box (their
    text is part of the outer box's)."""
    out = []
    for box in p.iter(f"{_W}txbxContent"):
        if any(a.tag in (_MC_FALLBACK, f"{_W}txbxContent") for a in box.iterancestors()):
            continue
        lines = []
        for para in box.iter(f"{_W}p"):
            if any(a.tag == _MC_FALLBACK for a in para.iterancestors()):
                continue
            own = [t for t in para.iter(f"{_W}t") if next(t.iterancestors(f"{_W}p")) is para]
            lines.append("".join(t.text or "" for t in own))
        out.append(join(lines))
    return out


def _table_row(table_row: Any, numbers: Numbering) -> str:
    cells, seen = [], set()
    for c in table_row.cells:  # a merged cell comes back once per grid column it spans
        if id(c._tc) not in seen:
            seen.add(id(c._tc))
            # a cell's text (python-docx's cell.text), its list items numbered
            cells.append("\n".join(numbers.label(p._p) + p.text for p in c.paragraphs))
    return row(cells)

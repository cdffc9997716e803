"""PowerPoint .pptx through python-pptx: each slide's shapes in reading order, tables, notes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from instructgen_office._text import join, row

__all__ = ["read_pptx"]

_Point = Callable[[float, float], tuple[float, float]]


def read_pptx(path: Path) -> tuple[str, dict[str, Any]]:
    from pptx import Presentation

    def text_of(shape: Any) -> str | None:
        if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            return join(p.text for p in shape.text_frame.paragraphs)
        if getattr(shape, "has_table", False) and shape.has_table:
            return join(row(c.text for c in r.cells) for r in shape.table.rows)
        return None

    presentation = Presentation(str(path))
    slides = []
    for slide in presentation.slides:
        texts = [t for shape in _reading_order(slide.shapes) if (t := text_of(shape))]
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            texts.append(slide.notes_slide.notes_text_frame.text)
        slides.append(join(texts))
    return join(slides, "\n\n"), {"slides": len(slides)}


def _reading_order(shapes: Iterable[Any]) -> list[Any]:
    """A slide's shapes, groups opened, top to bottom then left to right on the slide (its
    z-order is the order shapes were added, not the order they are read). Shapes in a group
    are placed through the group's child coordinate space (``a:chOff``/``a:chExt``)."""
    from pptx.shapes.group import GroupShape

    placed: list[tuple[float, float, int, Any]] = []

    def walk(group: Iterable[Any], to_slide: _Point) -> None:
        for shape in group:
            if isinstance(shape, GroupShape):
                walk(shape.shapes, _group_space(shape, to_slide))
            else:
                x, y = to_slide(shape.left or 0, shape.top or 0)
                placed.append((y, x, len(placed), shape))

    walk(shapes, lambda x, y: (x, y))
    return [shape for *_, shape in sorted(placed, key=lambda p: p[:3])]


def _group_space(group: Any, to_slide: _Point) -> _Point:
    xfrm = group._element.grpSpPr.xfrm
    if xfrm is None or xfrm.off is None or xfrm.chOff is None or xfrm.chExt is None:
        return to_slide
    sx = xfrm.ext.cx / xfrm.chExt.cx if xfrm.ext is not None and xfrm.chExt.cx else 1.0
    sy = xfrm.ext.cy / xfrm.chExt.cy if xfrm.ext is not None and xfrm.chExt.cy else 1.0
    off, ch = xfrm.off, xfrm.chOff
    return lambda x, y: to_slide(off.x + (x - ch.x) * sx, off.y + (y - ch.y) * sy)

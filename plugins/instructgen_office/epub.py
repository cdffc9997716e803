"""E-books (.epub): the chapters in the package document's reading order (its spine)."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from instructgen_office._text import join
from instructgen_office.html import html_to_text

__all__ = ["read_epub"]


def read_epub(path: Path) -> tuple[str, dict[str, Any]]:
    import lxml.etree

    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        order: list[str] = []
        try:
            container = lxml.etree.fromstring(z.read("META-INF/container.xml"))
            opf_path = container.xpath("string(//*[local-name()='rootfile']/@full-path)")
            opf = lxml.etree.fromstring(z.read(opf_path))
            base = opf_path.rsplit("/", 1)[0] + "/" if "/" in opf_path else ""
            items = {
                i.get("id"): i.get("href")
                for i in opf.xpath("//*[local-name()='manifest']/*[local-name()='item']")
            }
            for ref in opf.xpath("//*[local-name()='spine']/*[local-name()='itemref']"):
                href = items.get(ref.get("idref"))
                if href and base + href.split("#")[0] in names:
                    order.append(base + href.split("#")[0])
        except (KeyError, lxml.etree.XMLSyntaxError):
            pass
        if not order:  # no usable package document: every (X)HTML file in name order
            order = sorted(n for n in names if n.lower().endswith((".xhtml", ".html", ".htm")))
        chapters = [html_to_text(z.read(n)) for n in order]
    return join(chapters, "\n\n"), {"chapters": len(order)}

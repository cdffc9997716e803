"""Office, e-book, e-mail and web formats read natively, with no layout model and no network:
docx (python-docx), pptx (python-pptx), xlsx (openpyxl), xls (xlrd), odt and epub (their XML
through lxml), rtf (striprtf), eml (the standard library's e-mail parser), msg (python-oxmsg),
html and htm (lxml). One module per format; this one routes a file to its reader.

These readers take the text and the reading order (paragraphs, table rows, slides, sheets,
e-book chapters) and nothing else, which makes them several times faster than
``unstructured``'s partitioners, whose import alone costs about 1.5 s and 170 MB per worker.
They rank above the ``unstructured`` plugin, which stays registered for the same formats: when
a native reader cannot read a file, ``unstructured`` is tried next (not for encrypted files
or e-mails that parsed and have no text: no reader can do better there).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from instructgen import (
    MIME_TYPES,
    Extracted,
    ExtractionError,
    Extractor,
    ExtractorRegistry,
    check_container,
    failure_reason,
    hookimpl,
    looks_like_office,
    resolve_kind,
    sniff_kind,
)
from instructgen_office.docx import read_docx
from instructgen_office.eml import read_eml
from instructgen_office.epub import read_epub
from instructgen_office.html import html_to_text, read_html
from instructgen_office.msg import read_msg
from instructgen_office.odt import read_odt
from instructgen_office.pptx import read_pptx
from instructgen_office.rtf import read_rtf
from instructgen_office.spreadsheets import read_xls, read_xlsx

__all__ = ["OfficeExtractor", "html_to_text"]

_READERS: dict[str, Callable[[Path], tuple[str, dict[str, Any]]]] = {
    "docx": read_docx,
    "pptx": read_pptx,
    "xlsx": read_xlsx,
    "xls": read_xls,
    "odt": read_odt,
    "epub": read_epub,
    "rtf": read_rtf,
    "eml": read_eml,
    "msg": read_msg,
    "html": read_html,
    "htm": read_html,
}


class OfficeExtractor(Extractor):
    name = "office"
    extensions = tuple(_READERS)
    mime_types = tuple(dict.fromkeys(MIME_TYPES[kind] for kind in _READERS))
    priority = 20  # above unstructured (10), which reads these files when this reader cannot
    requires = ("lxml", "docx", "pptx", "openpyxl", "xlrd", "striprtf", "oxmsg")
    install_with = "instructgen[documents]"

    def sniff(self, head: bytes) -> bool:
        return looks_like_office(head)

    def extract(self, path: Path) -> Extracted:
        with path.open("rb") as fh:
            head = fh.read(2048)
        if not head:
            raise ExtractionError(str(path), "empty file")
        sniffed = sniff_kind(path, head)
        kind = resolve_kind(path, sniffed, _READERS)
        reader = _READERS.get(kind)
        if reader is None:
            raise ExtractionError(str(path), "unrecognised office/e-mail/web format")
        check_container(path, head, kind, sniffed)
        try:
            text, meta = reader(path)
        except ExtractionError:
            raise
        except Exception as exc:
            raise ExtractionError(str(path), failure_reason(kind, exc)) from None
        if not text.strip():
            # A workbook that opened and has no cell is empty for every reader.
            final = kind in ("xlsx", "xls")
            raise ExtractionError(str(path), f"no text found in the {kind} file", final=final)
        return Extracted(text, {**meta, "format": kind})


@hookimpl
def register_extractors(registry: ExtractorRegistry) -> None:
    registry.add(OfficeExtractor)

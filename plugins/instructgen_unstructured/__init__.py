"""Office, e-mail and web formats through ``unstructured``, offline.

Outlook .msg, and docx, pptx, xlsx, xls, odt, epub, rtf, eml, html, htm whenever the native
``office`` plugin (which ranks higher) cannot read a file or is blocked
(``INSTRUCTGEN_BLOCK_PLUGINS=office``). The spaCy model download that ``unstructured`` attempts
at first use is replaced by a local pipeline (see ``offline.py``). epub, odt and rtf need
``unstructured``'s pandoc extras (``pip install 'unstructured[epub,odt,rtf]'``).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

from instructgen.errors import ExtractionError
from instructgen.extractor import Extracted, Extractor
from instructgen.hookspecs import hookimpl
from instructgen.registry import ExtractorRegistry

__all__ = ["UnstructuredExtractor"]

_MAIL_HEADER = re.compile(
    r"^(?:From [^\n]*\n)?(?:[A-Za-z][A-Za-z0-9-]*:[^\n]*\r?\n(?:[ \t][^\n]*\r?\n)*){2,}"
)
_HTML_TAGS = ("<html", "<!doctype", "<head", "<body", "<pre", "<div", "<p>", "<table")

_PARTITIONERS = {
    "docx": ("unstructured.partition.docx", "partition_docx"),
    "pptx": ("unstructured.partition.pptx", "partition_pptx"),
    "xlsx": ("unstructured.partition.xlsx", "partition_xlsx"),
    "xls": ("unstructured.partition.xlsx", "partition_xlsx"),
    "odt": ("unstructured.partition.odt", "partition_odt"),
    "epub": ("unstructured.partition.epub", "partition_epub"),
    "rtf": ("unstructured.partition.rtf", "partition_rtf"),
    "eml": ("unstructured.partition.email", "partition_email"),
    "msg": ("unstructured.partition.msg", "partition_msg"),
    "html": ("unstructured.partition.html", "partition_html"),
    "htm": ("unstructured.partition.html", "partition_html"),
}


def _kind_from_content(path: Path, head: bytes) -> str | None:
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as z:
                names = set(z.namelist())
        except zipfile.BadZipFile:
            return None
        if "word/document.xml" in names:
            return "docx"
        if "ppt/presentation.xml" in names:
            return "pptx"
        if "xl/workbook.xml" in names:
            return "xlsx"
        if "mimetype" in names:
            with zipfile.ZipFile(path) as z:
                mime = z.read("mimetype").decode(errors="replace")
            return "epub" if "epub" in mime else "odt" if "opendocument.text" in mime else None
        return None
    if head.startswith(b"{\\rtf"):
        return "rtf"
    low = head[:512].lower()
    if b"<html" in low or b"<!doctype html" in low:
        return "html"
    return None


class UnstructuredExtractor(Extractor):
    name = "unstructured"
    extensions = tuple(_PARTITIONERS)
    mime_types = (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.ms-excel",
        "application/vnd.oasis.opendocument.text",
        "application/epub+zip",
        "application/rtf",
        "message/rfc822",
        "application/vnd.ms-outlook",
        "text/html",
    )
    priority = 10

    def sniff(self, head: bytes) -> bool:
        ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .msg and .xls are OLE files
        if head.startswith((b"PK\x03\x04", b"{\\rtf", ole)):
            return True
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            text = head[2:].decode("utf-16-le" if head[0] == 0xFF else "utf-16-be", "replace")
        else:
            text = head.decode("latin-1")
        if _MAIL_HEADER.match(text):
            return True
        low = text.lstrip().lower()
        return low.startswith("<") and any(t in low for t in _HTML_TAGS)

    def extract(self, path: Path) -> Extracted:
        import importlib

        from instructgen_unstructured.offline import ensure_offline

        ensure_offline()
        kind = path.suffix.lower().lstrip(".")
        head = path.read_bytes()[:2048]
        if not head:
            raise ExtractionError(str(path), "empty file")
        sniffed = _kind_from_content(path, head)
        if kind not in _PARTITIONERS or (sniffed and sniffed != kind and kind != "htm"):
            kind = sniffed or kind
        if kind not in _PARTITIONERS:
            raise ExtractionError(str(path), "unrecognised office/e-mail/web format")
        module, func = _PARTITIONERS[kind]
        kwargs: dict[str, Any] = {"filename": str(path)}
        if kind in ("eml", "msg"):
            kwargs["process_attachments"] = False
        try:
            partition = getattr(importlib.import_module(module), func)
            elements = partition(**kwargs)
        except ImportError as exc:
            extra = "xlsx" if kind == "xls" else kind
            raise ExtractionError(
                str(path),
                f"unstructured cannot read {kind} here ({exc.name or exc}): "
                f"pip install 'unstructured[{extra}]'",
            ) from None
        except Exception as exc:
            raise ExtractionError(str(path), _reason(kind, exc)) from None
        text = "\n\n".join(str(e).strip() for e in elements if str(e).strip())
        if not text.strip():
            if kind in ("eml", "msg") and _looks_encrypted(path):
                raise ExtractionError(str(path), f"encrypted e-mail ({kind}: PGP or S/MIME)")
            raise ExtractionError(str(path), f"no text found in the {kind} file")
        return Extracted(text, {"elements": len(elements), "format": kind})


def _looks_encrypted(path: Path) -> bool:
    data = path.read_bytes()[:1_000_000].lower()
    markers = ("multipart/encrypted", "pkcs7-mime", "smime.p7m", "pgp-encrypted")
    return any(m.encode() in data or m.encode("utf-16-le") in data for m in markers)


def _reason(kind: str, exc: Exception) -> str:
    msg = f"{type(exc).__name__}: {exc}"
    low = msg.lower()
    if "encrypt" in low or "password" in low or "s/mime" in low or "pkcs7" in low:
        return f"encrypted or password-protected {kind} file"
    return f"cannot read the {kind} file ({msg[:200]})"


@hookimpl
def register_extractors(registry: ExtractorRegistry) -> None:
    registry.add(UnstructuredExtractor)

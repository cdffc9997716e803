"""Office, e-mail and web formats through ``unstructured``, offline.

Outlook .msg, and docx, pptx, xlsx, xls, odt, epub, rtf, eml, html, htm whenever the native
``office`` plugin (which ranks higher) cannot read a file or is blocked
(``INSTRUCTGEN_BLOCK_PLUGINS=office``). The spaCy model download that ``unstructured`` attempts
at first use is replaced by a local pipeline (see ``offline.py``). epub, odt and rtf need
``unstructured``'s pandoc extras (``pip install 'unstructured[epub,odt,rtf]'``).
"""

from __future__ import annotations

import tempfile
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
    unicode_encoding,
)

__all__ = ["UnstructuredExtractor"]

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


class UnstructuredExtractor(Extractor):
    name = "unstructured"
    extensions = tuple(_PARTITIONERS)
    mime_types = tuple(dict.fromkeys(MIME_TYPES[kind] for kind in _PARTITIONERS))
    priority = 10
    requires = ("unstructured",)
    install_with = "instructgen[documents]"

    def sniff(self, head: bytes) -> bool:
        return looks_like_office(head)

    def extract(self, path: Path) -> Extracted:
        import importlib

        from instructgen_unstructured.offline import ensure_offline

        ensure_offline()
        with path.open("rb") as fh:
            head = fh.read(2048)
        if not head:
            raise ExtractionError(str(path), "empty file")
        sniffed = sniff_kind(path, head)
        kind = resolve_kind(path, sniffed, _PARTITIONERS)
        if kind not in _PARTITIONERS:
            raise ExtractionError(str(path), "unrecognised office/e-mail/web format")
        check_container(path, head, kind, sniffed)
        module, func = _PARTITIONERS[kind]
        kwargs: dict[str, Any] = {"filename": str(path)}
        if kind in ("eml", "msg"):
            kwargs["process_attachments"] = False
        try:
            partition = getattr(importlib.import_module(module), func)
            with tempfile.TemporaryDirectory(prefix="instructgen-unstructured-") as tmp:
                wide = unicode_encoding(head) if kind == "eml" else None
                if wide is not None:  # an e-mail saved as UTF-16/32: its parser wants bytes
                    utf8 = Path(tmp) / path.name  # in an ASCII-compatible encoding
                    text = path.read_bytes().decode(wide, "replace").lstrip("\ufeff")
                    utf8.write_bytes(text.encode("utf-8"))
                    kwargs["filename"] = str(utf8)
                elements = partition(**kwargs)
        except ImportError as exc:
            extra = "xlsx" if kind == "xls" else kind
            raise ExtractionError(
                str(path),
                f"unstructured cannot read {kind} here ({exc.name or exc}): "
                f"pip install 'unstructured[{extra}]'",
            ) from None
        except Exception as exc:
            raise ExtractionError(str(path), failure_reason(kind, exc)) from None
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


@hookimpl
def register_extractors(registry: ExtractorRegistry) -> None:
    registry.add(UnstructuredExtractor)

"""Office, e-book, e-mail and web formats read natively, with no layout model and no network:
docx (python-docx), pptx (python-pptx), xlsx (openpyxl), xls (xlrd), odt and epub (their XML
through lxml), rtf (striprtf), eml (the standard library's e-mail parser), msg (python-oxmsg),
html and htm (lxml).

These readers take the text and the reading order (paragraphs, table rows, slides, sheets,
e-book chapters) and nothing else, which makes them several times faster than
``unstructured``'s partitioners, whose import alone costs about 1.5 s and 170 MB per worker.
They rank above the ``unstructured`` plugin, which stays registered for the same formats: when
a native reader cannot read a file, ``unstructured`` is tried next (not for encrypted files
or e-mails that parsed and have no text: no reader can do better there).
"""

from __future__ import annotations

import codecs
import email
import email.message
import email.policy
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from instructgen import extract_file
from instructgen.errors import ExtractionError
from instructgen.extractor import Extracted, Extractor
from instructgen.hookspecs import hookimpl
from instructgen.registry import ExtractorRegistry

__all__ = [
    "OFFICE_MIME_TYPES",
    "OfficeExtractor",
    "check_container",
    "failure_reason",
    "html_to_text",
    "kind_from_content",
    "looks_like_office",
    "read_attachments",
    "resolve_kind",
]

_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_FORMATS = ("docx", "pptx", "xlsx", "odt", "epub")
_MAIL_HEADER = re.compile(
    r"^(?:From [^\n]*\n)?(?:[A-Za-z][A-Za-z0-9-]*:[^\n]*\r?\n(?:[ \t][^\n]*\r?\n)*){2,}"
)
_HTML_TAGS = ("<html", "<!doctype", "<head", "<body", "<pre", "<div", "<p>", "<table")
_ENCRYPTED_MAIL = ("multipart/encrypted", "application/pkcs7-mime", "application/x-pkcs7-mime")


# -- helpers -------------------------------------------------------------------------------------


def _join(parts: Iterable[str], sep: str = "\n") -> str:
    return sep.join(p for p in (x.strip() for x in parts) if p)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _row(values: Iterable[Any]) -> str:
    return " | ".join(t for t in map(_cell, values) if t)


_BLOCK = {
    "address", "article", "aside", "blockquote", "br", "caption", "dd", "div", "dl", "dt",
    "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody", "td", "tfoot",
    "th", "thead", "title", "tr", "ul",
}  # fmt: skip
_DROP = ("script", "style", "noscript", "template", "svg", "head/meta", "head/link")


def _decode_markup(data: bytes) -> str:
    """Bytes of an HTML/XHTML file to text: the charset the document declares (when it has no
    BOM and is not UTF-16/32), else what the text plugin's decoder detects."""
    from instructgen_text import decode_bytes

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
    return _join(lines)


# -- one reader per format ------------------------------------------------------------------


def _docx(path: Path) -> tuple[str, dict[str, Any]]:
    import docx
    from docx.table import Table

    document = docx.Document(str(path))
    tables = 0

    def blocks(container: Any) -> Iterator[str]:
        nonlocal tables
        for block in container.iter_inner_content():  # paragraphs and tables in order
            if isinstance(block, Table):
                tables += 1
                yield _join(_docx_row(row) for row in block.rows)
            else:
                yield _join([block.text, *_text_boxes(block._p)])

    seen: set[str] = set()

    def headers_footers(*kinds: str) -> Iterator[str]:
        for section in document.sections:
            for kind in kinds:
                part = getattr(section, kind)
                if part.is_linked_to_previous:
                    continue
                text = _join(blocks(part))
                if text and text not in seen:  # the same header on every section: once
                    seen.add(text)
                    yield text

    parts = [
        *headers_footers("first_page_header", "header", "even_page_header"),
        *blocks(document),
        *headers_footers("first_page_footer", "footer", "even_page_footer"),
    ]
    return _join(parts), {"tables": tables}


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"


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
        out.append(_join(lines))
    return out


def _docx_row(row: Any) -> str:
    cells, seen = [], set()
    for cell in row.cells:  # a merged cell comes back once per grid column it spans
        if id(cell._tc) not in seen:
            seen.add(id(cell._tc))
            cells.append(cell.text)
    return _row(cells)


def _pptx(path: Path) -> tuple[str, dict[str, Any]]:
    from pptx import Presentation

    def text_of(shape: Any) -> str | None:
        if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            return _join(p.text for p in shape.text_frame.paragraphs)
        if getattr(shape, "has_table", False) and shape.has_table:
            return _join(_row(c.text for c in row.cells) for row in shape.table.rows)
        return None

    presentation = Presentation(str(path))
    slides = []
    for slide in presentation.slides:
        texts = [t for shape in _reading_order(slide.shapes) if (t := text_of(shape))]
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            texts.append(slide.notes_slide.notes_text_frame.text)
        slides.append(_join(texts))
    return _join(slides, "\n\n"), {"slides": len(slides)}


_Point = Callable[[float, float], tuple[float, float]]


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


def _xlsx(path: Path) -> tuple[str, dict[str, Any]]:
    import openpyxl

    workbook = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
    try:
        sheets = []
        for ws in workbook.worksheets:
            ws.reset_dimensions()  # the stored size is often wrong: read every row there is
            rows = _join(_row(r) for r in ws.iter_rows(values_only=True))
            if rows:
                sheets.append(f"{ws.title}\n{rows}")
    finally:
        workbook.close()
    return _join(sheets, "\n\n"), {"sheets": len(workbook.sheetnames)}


def _xls(path: Path) -> tuple[str, dict[str, Any]]:
    import xlrd

    book = xlrd.open_workbook(str(path), on_demand=True)
    try:
        sheets = []
        for ws in book.sheets():
            rows = _join(_row(ws.row_values(i)) for i in range(ws.nrows))
            if rows:
                sheets.append(f"{ws.name}\n{rows}")
        return _join(sheets, "\n\n"), {"sheets": book.nsheets}
    finally:
        book.release_resources()


_ODF_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_ODF_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"


def _odf_paragraph(el: Any) -> str:
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
            out.append(_odf_paragraph(child))
        out.append(child.tail or "")
    return "".join(out)


def _odt(path: Path) -> tuple[str, dict[str, Any]]:
    import lxml.etree

    with zipfile.ZipFile(path) as z:
        root = lxml.etree.fromstring(z.read("content.xml"))
    paragraph_tags = {f"{{{_ODF_TEXT}}}p", f"{{{_ODF_TEXT}}}h"}
    row_tag = f"{{{_ODF_TABLE}}}table-row"
    parts: list[str] = []
    for el in root.iter(row_tag, *paragraph_tags):
        if el.tag == row_tag:
            cells = el.findall(f"{{{_ODF_TABLE}}}table-cell")
            parts.append(
                _row(_join(_odf_paragraph(p) for p in c.iter(*paragraph_tags)) for c in cells)
            )
        elif not any(a.tag in paragraph_tags or a.tag == row_tag for a in el.iterancestors()):
            parts.append(_odf_paragraph(el))
    return _join(parts), {}


def _epub(path: Path) -> tuple[str, dict[str, Any]]:
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
    return _join(chapters, "\n\n"), {"chapters": len(order)}


def _rtf(path: Path) -> tuple[str, dict[str, Any]]:
    from striprtf.striprtf import rtf_to_text

    raw = path.read_bytes().decode("latin-1")  # RTF is 7-bit; \'xx escapes carry the rest
    return rtf_to_text(raw, errors="replace"), {}


def _eml(path: Path) -> tuple[str, dict[str, Any]]:
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        data = data.decode("utf-16").encode("utf-8")
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    own = list(_own_parts(msg))
    types = {part.get_content_type() for part in own}
    if types & set(_ENCRYPTED_MAIL) or any("smime.p7m" in (p.get_filename() or "") for p in own):
        raise ExtractionError(str(path), "encrypted e-mail (eml: PGP or S/MIME)", final=True)
    bodies: list[str] = []
    main = msg.get_body(preferencelist=("plain", "html"))
    parts = [main] if main is not None else []
    parts += [  # other inline text parts (not attachments), e.g. several text/plain blocks
        p
        for p in own
        if p is not main
        and p.get_content_maintype() == "text"
        and not p.is_attachment()
        and p.get_content_subtype() == "plain"
        and (main is None or main.get_content_subtype() == "plain")
    ]
    for part in parts:
        try:
            content = part.get_content()
        except (LookupError, ValueError):  # unknown or wrong charset: decode leniently
            payload = part.get_payload(decode=True) or b""
            content = (
                payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
            )
        if not isinstance(content, str):
            continue
        text = html_to_text(content) if part.get_content_subtype() == "html" else content
        if text.strip() and text.strip() not in bodies:
            bodies.append(text.strip())
    attached = []
    for part in msg.iter_attachments():
        name = part.get_filename()
        if part.get_content_type() == "message/rfc822":  # a forwarded e-mail
            inner = part.get_payload()
            first = inner[0] if isinstance(inner, list) and inner else None
            payload = first.as_bytes() if isinstance(first, email.message.Message) else None
            name = name or "attached.eml"
        else:
            payload = part.get_payload(decode=True)
        inline_image = part.get_content_maintype() == "image" and part["Content-ID"]
        if name and isinstance(payload, bytes) and payload and not inline_image:
            attached.append((str(name), payload))
    texts, read = read_attachments(attached)
    if not bodies and not texts:  # parsed, but no text part and no attachment with text
        raise ExtractionError(str(path), "no text found in the eml file", final=True)
    header = _join(f"{h}: {msg[h]}" for h in ("Subject", "From", "To", "Cc", "Date") if msg[h])
    meta: dict[str, Any] = {"parts": len(bodies)}
    if read:
        meta["attachments"] = read
    return _join([header, *bodies, *texts], "\n\n"), meta


def _own_parts(msg: EmailMessage) -> Iterator[EmailMessage]:
    """The parts of a message, not those of messages attached to it (read as attachments)."""
    yield msg
    if msg.get_content_type() != "message/rfc822" and msg.is_multipart():
        for sub in msg.get_payload():
            if isinstance(sub, EmailMessage):
                yield from _own_parts(sub)


def read_attachments(files: Iterable[tuple[str, bytes]]) -> tuple[list[str], list[dict[str, Any]]]:
    """The text of each attached file, read the way a run reads a file (``extract_file``), as
    "Attachment: NAME" blocks; and per attachment its reader or why it gave no text."""
    texts: list[str] = []
    report: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="instructgen-attachment-") as tmp:
        for i, (name, data) in enumerate(files):
            safe = Path(name.replace("\\", "/")).name.strip() or f"attachment-{i + 1}"
            target = Path(tmp) / str(i) / safe  # the name only: no path from the message
            target.parent.mkdir()
            target.write_bytes(data)
            try:
                out = extract_file(target)
            except ExtractionError as exc:
                report.append({"name": safe, "skip": exc.reason})
                continue
            texts.append(f"Attachment: {safe}\n{out.text.strip()}")
            report.append({"name": safe, "extractor": out.metadata.get("extractor")})
    return texts, report


def _msg(path: Path) -> tuple[str, dict[str, Any]]:
    """Outlook .msg through python-oxmsg (the reader ``unstructured`` uses too)."""
    from oxmsg import Message

    msg = Message.load(str(path))
    if "encrypted" in msg.message_headers.get("Content-Type", "") or any(
        (a.file_name or "").lower().endswith(".p7m") for a in msg.attachments
    ):
        raise ExtractionError(str(path), "encrypted e-mail (msg: PGP or S/MIME)", final=True)
    body = html_to_text(msg.html_body) if msg.html_body else (msg.body or "")
    html = msg.html_body or ""
    attached = [
        (a.file_name, a.file_bytes)
        for a in msg.attachments
        if a.file_name
        and a.file_bytes
        # an image the html body shows (a logo, a signature) is not an attachment to read
        and not ((a.mime_type or "").startswith("image/") and f"cid:{a.file_name}" in html)
    ]
    texts, read = read_attachments(attached)
    if not body.strip() and not texts:
        raise ExtractionError(str(path), "no text found in the msg file", final=True)
    header = _join(
        f"{name}: {value}"
        for name, value in (("Subject", msg.subject), ("From", msg.sender))
        if value
    )
    meta: dict[str, Any] = {"attachments": read} if read else {}
    return _join([header, body, *texts], "\n\n"), meta


def _html(path: Path) -> tuple[str, dict[str, Any]]:
    return html_to_text(path.read_bytes()), {}


_READERS: dict[str, Callable[[Path], tuple[str, dict[str, Any]]]] = {
    "docx": _docx,
    "pptx": _pptx,
    "xlsx": _xlsx,
    "xls": _xls,
    "odt": _odt,
    "epub": _epub,
    "rtf": _rtf,
    "eml": _eml,
    "msg": _msg,
    "html": _html,
    "htm": _html,
}


def kind_from_content(path: Path, head: bytes) -> str | None:
    """The format a file's bytes show (docx, pptx, xlsx, epub, odt, rtf, html), or None."""
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as z:
                names = set(z.namelist())
                mime = z.read("mimetype").decode(errors="replace") if "mimetype" in names else ""
        except (zipfile.BadZipFile, OSError):
            return None
        if "word/document.xml" in names:
            return "docx"
        if "ppt/presentation.xml" in names:
            return "pptx"
        if "xl/workbook.xml" in names:
            return "xlsx"
        return "epub" if "epub" in mime else "odt" if "opendocument.text" in mime else None
    if head.startswith(b"{\\rtf"):
        return "rtf"
    if head.startswith(_OLE):
        return None  # xls or msg: the extension decides
    low = head[:1024].lower().replace(b"\x00", b"")
    if b"<html" in low or b"<!doctype html" in low:
        return "html"
    return None


def resolve_kind(path: Path, sniffed: str | None, known: Iterable[str]) -> str:
    """The format to read a file as: its extension, unless its content (``sniffed``, from
    ``kind_from_content``) says otherwise."""
    kind = path.suffix.lower().lstrip(".")
    if kind not in known or (sniffed and sniffed != kind and kind != "htm"):
        kind = sniffed or kind
    return kind


def looks_like_office(head: bytes) -> bool:
    """Sniffing for the office/e-mail/web family: zip and OLE containers, RTF, mail headers,
    HTML (also UTF-16)."""
    if head.startswith((b"PK\x03\x04", b"{\\rtf", _OLE)):
        return True
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = head[2:].decode("utf-16-le" if head[0] == 0xFF else "utf-16-be", "replace")
    else:
        text = head.decode("latin-1")
    if _MAIL_HEADER.match(text):
        return True
    low = text.lstrip().lower()
    return low.startswith("<") and any(t in low for t in _HTML_TAGS)


def check_container(path: Path, head: bytes, kind: str, sniffed: str | None) -> None:
    """Raise ``ExtractionError`` when a zip-based format's file cannot be what it claims: a
    password-protected docx/pptx/xlsx (an OLE container holding ``EncryptedPackage``, final),
    another OLE file (a legacy Office file under a new extension: another reader may know
    it), or a damaged or truncated zip (final)."""
    if kind not in _ZIP_FORMATS:
        return
    if head.startswith(_OLE):
        with path.open("rb") as fh:
            encrypted = "EncryptedPackage".encode("utf-16-le") in fh.read(4 << 20)
        if encrypted:
            raise ExtractionError(
                str(path), f"encrypted or password-protected {kind} file", final=True
            )
        raise ExtractionError(str(path), f"a legacy Office (OLE) file, not a {kind} file")
    if sniffed is None and not zipfile.is_zipfile(path):
        raise ExtractionError(
            str(path), f"cannot read the {kind} file (damaged or truncated zip)", final=True
        )


def failure_reason(kind: str, exc: Exception) -> str:
    """The skip reason for a reader's exception."""
    msg = f"{type(exc).__name__}: {exc}"
    low = msg.lower()
    if any(w in low for w in ("encrypt", "password", "cfb", "s/mime", "pkcs7")):
        return f"encrypted or password-protected {kind} file"
    return f"cannot read the {kind} file ({msg[:200]})"


OFFICE_MIME_TYPES = (
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


class OfficeExtractor(Extractor):
    name = "office"
    extensions = tuple(_READERS)
    mime_types = OFFICE_MIME_TYPES
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
        sniffed = kind_from_content(path, head)
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

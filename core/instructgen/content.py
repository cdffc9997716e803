"""What a file's bytes are, for extractors: text decoding and content sniffing.

Public plugin API (exported from ``instructgen``): helpers several extractor plugins need,
kept here so that no plugin imports another. They look at bytes only — magic numbers, byte
order marks, the names inside a zip container, a mail header block, an HTML tag — and parse
no format: reading a format stays the job of the extractor that registers it.

- ``decode_bytes(data)``: bytes of a text file to ``(text, encoding)``: a BOM first, then
  strict UTF-8, then UTF-16/32 without a BOM (recognised by their zero bytes), then detection
  of legacy encodings (cp1252, ISO-8859-x, ...) with charset-normalizer.
- ``unicode_encoding(head)``: the UTF-16/32 or UTF-8-with-BOM encoding bytes are in, or None.
- ``head_text(head)``: the first bytes as text for sniffing (any of the above, else Latin-1).
- ``looks_like_email(head)``, ``looks_like_html(head)``: the content of an e-mail (RFC 822
  headers) or of a web page, in any of those encodings.
- ``looks_like_office(head)``: any of those, a zip or OLE container, or RTF.
- ``sniff_kind(path, head)``: the format a file's content shows (docx, pptx, xlsx, odt, epub,
  rtf, eml, html), or None; ``resolve_kind`` weighs it against the extension.
- ``check_container(path, head, kind, sniffed)``: a zip-based office file that cannot be what
  it claims (encrypted, a legacy OLE file, a damaged zip) as a typed ``ExtractionError``.
- ``failure_reason(kind, exc)``: the skip reason a person reads for a reader's exception.

OCR of an image is not here: an extractor holding an image (a scanned PDF page) writes it to a
file and reads it with ``instructgen.extract_file``, which uses whichever extractor is
registered for images.
"""

from __future__ import annotations

import codecs
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path

from instructgen.errors import ExtractionError

__all__ = [
    "BOMS",
    "MIME_TYPES",
    "OLE_MAGIC",
    "check_container",
    "decode_bytes",
    "failure_reason",
    "head_text",
    "looks_like_email",
    "looks_like_html",
    "looks_like_office",
    "resolve_kind",
    "sniff_kind",
    "unicode_encoding",
]

BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_FORMATS = ("docx", "pptx", "xlsx", "odt", "epub")

# The MIME type of each format the built-in readers know, by extension.
MIME_TYPES: dict[str, str] = {
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "xls": "application/vnd.ms-excel",
    "odt": "application/vnd.oasis.opendocument.text",
    "epub": "application/epub+zip",
    "rtf": "application/rtf",
    "eml": "message/rfc822",
    "msg": "application/vnd.ms-outlook",
    "html": "text/html",
    "htm": "text/html",
}

_MAIL_HEADER = re.compile(
    r"^(?:From [^\n]*\n)?((?:[A-Za-z][A-Za-z0-9-]*:[^\n]*\r?\n(?:[ \t][^\n]*\r?\n)*){2,})"
)
_HEADER_NAME = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):", re.MULTILINE)
# Headers only mail has: a block of "Key: value" lines (a note, front matter) is not a mail
# unless two of these are in it.
_MAIL_FIELDS = frozenset(
    {
        "from", "to", "cc", "bcc", "subject", "date", "message-id", "mime-version",
        "received", "return-path", "reply-to", "sender", "in-reply-to", "references",
        "delivered-to", "content-type", "content-transfer-encoding", "x-mailer",
        "thread-topic", "thread-index", "dkim-signature", "authentication-results",
    }
)  # fmt: skip
_HTML_TAGS = ("<html", "<!doctype", "<head", "<body", "<pre", "<div", "<p>", "<table")


def unicode_encoding(head: bytes) -> str | None:
    """The Unicode encoding bytes are in when a BOM or the zero bytes of UTF-16/32 show it
    (``utf-8-sig``, ``utf-16``, ``utf-16-le``, ``utf-32-be``, ...), else None — plain UTF-8
    and 8-bit encodings included."""
    for bom, enc in BOMS:
        if head.startswith(bom):
            return enc
    n = len(head)
    if n < 4 or b"\x00" not in head:
        return None
    zeros_even, zeros_odd = head[0::2].count(0), head[1::2].count(0)
    if max(zeros_even, zeros_odd) <= n // 4:
        return None
    # one byte of each ASCII character is zero: UTF-16; three of them (the middle two always):
    # UTF-32, big-endian when the first of the four is zero too
    if head[1::4].count(0) > n // 8 and head[2::4].count(0) > n // 8:
        return "utf-32-be" if head[0::4].count(0) > n // 8 else "utf-32-le"
    return "utf-16-be" if zeros_even > zeros_odd else "utf-16-le"


def decode_bytes(data: bytes) -> tuple[str, str]:
    """``(text, encoding)`` of a text file's bytes: BOM first, then strict UTF-8, then
    UTF-16/32 without a BOM, then detection. Raises ``ValueError`` when nothing fits."""
    for bom, enc in BOMS:
        if data.startswith(bom):
            return data.decode(enc), enc
    try:
        text = data.decode("utf-8")
        if "\x00" not in text:
            return text, "utf-8"
    except UnicodeDecodeError:
        pass
    wide = unicode_encoding(data)
    if wide is not None:
        try:
            return data.decode(wide), wide
        except UnicodeDecodeError:
            pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise ValueError("unknown text encoding")
    return str(best), best.encoding


def head_text(head: bytes) -> str:
    """The first bytes of a file as text, for sniffing: decoded as UTF-16/32 (a BOM or their
    zero bytes), else as Latin-1 (every byte a character: ASCII markers keep their place). A
    character cut at the end is replaced, not an error."""
    enc = unicode_encoding(head)
    if enc is None:
        return head.decode("latin-1")
    if enc in ("utf-16", "utf-32"):  # with a BOM: which one tells the byte order
        enc = {
            codecs.BOM_UTF16_LE: "utf-16-le",
            codecs.BOM_UTF16_BE: "utf-16-be",
            codecs.BOM_UTF32_LE: "utf-32-le",
            codecs.BOM_UTF32_BE: "utf-32-be",
        }[head[:4] if enc == "utf-32" else head[:2]]
        head = head[4:] if enc.startswith("utf-32") else head[2:]
    return head.decode(enc, "replace").lstrip("\ufeff")


def looks_like_email(head: bytes) -> bool:
    """An e-mail's content (RFC 822): it starts with a block of header lines (an mbox
    ``From `` line may come first) of which at least two are mail headers (From, To, Subject,
    Date, Message-ID, MIME-Version, Received, ...). In any encoding ``head_text`` reads."""
    text = head_text(head).lstrip("\r\n")
    m = _MAIL_HEADER.match(text)
    if m is None:
        return False
    names = {n.lower() for n in _HEADER_NAME.findall(m.group(1))}
    return len(names & _MAIL_FIELDS) >= 2


def looks_like_html(head: bytes) -> bool:
    """A web page's content: it starts with a tag and has one of the tags every page has."""
    low = head_text(head).lstrip().lower()
    return low.startswith("<") and any(t in low for t in _HTML_TAGS)


def looks_like_office(head: bytes) -> bool:
    """The office/e-mail/web family: a zip or OLE container, RTF, an e-mail, a web page."""
    if head.startswith((b"PK\x03\x04", b"{\\rtf", OLE_MAGIC)):
        return True
    return looks_like_email(head) or looks_like_html(head)


def sniff_kind(path: Path, head: bytes) -> str | None:
    """The format a file's content shows, or None: docx, pptx, xlsx, epub, odt (the names in a
    zip container), rtf, eml (a mail header block), html. An OLE container (xls, msg, doc) says
    None: its extension decides."""
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as z:
                names = set(z.namelist())
                mime = z.read("mimetype").decode(errors="replace") if "mimetype" in names else ""
        except (zipfile.BadZipFile, OSError, KeyError):
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
    if head.startswith(OLE_MAGIC):
        return None
    if looks_like_email(head):
        return "eml"
    low = head_text(head[:2048]).lower()
    if "<html" in low or "<!doctype html" in low or looks_like_html(head):
        return "html"
    return None


def resolve_kind(path: Path, sniffed: str | None, known: Iterable[str]) -> str:
    """The format to read a file as: its extension, unless its content (``sniffed``, from
    ``sniff_kind``) says otherwise."""
    kind = path.suffix.lower().lstrip(".")
    if kind not in known or (sniffed and sniffed != kind and kind != "htm"):
        kind = sniffed or kind
    return kind


def check_container(path: Path, head: bytes, kind: str, sniffed: str | None) -> None:
    """Raise ``ExtractionError`` when a zip-based format's file cannot be what it claims: a
    password-protected docx/pptx/xlsx (an OLE container holding ``EncryptedPackage``, final),
    another OLE file (a legacy Office file under a new extension: another reader may know
    it), or a damaged or truncated zip (final)."""
    if kind not in ZIP_FORMATS:
        return
    if head.startswith(OLE_MAGIC):
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
    """The skip reason for a reader's unexpected exception: "encrypted or password-protected"
    when the library's message says so, else "cannot read the KIND file (...)"."""
    msg = f"{type(exc).__name__}: {exc}"
    low = msg.lower()
    if any(w in low for w in ("encrypt", "password", "cfb", "s/mime", "pkcs7")):
        return f"encrypted or password-protected {kind} file"
    return f"cannot read the {kind} file ({msg[:200]})"

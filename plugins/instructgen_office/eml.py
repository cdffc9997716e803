"""E-mail (.eml, RFC 822) through the standard library's parser: headers, text bodies, and
attachments read as files. E-mails saved as UTF-16/32 or with a BOM are decoded first."""

from __future__ import annotations

import email
import email.message
import email.policy
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from instructgen import ExtractionError, unicode_encoding
from instructgen_office._text import join
from instructgen_office.attachments import read_attachments
from instructgen_office.html import html_to_text

__all__ = ["read_eml"]

_ENCRYPTED_MAIL = ("multipart/encrypted", "application/pkcs7-mime", "application/x-pkcs7-mime")


def _mail_bytes(data: bytes) -> bytes:
    """The message as the e-mail parser wants it: bytes in an ASCII-compatible encoding. A
    message saved as UTF-16/32 (Windows tools do) or with a UTF-8 BOM is re-encoded as UTF-8;
    its parts keep the charsets they declare."""
    enc = unicode_encoding(data[:4096])
    if enc is None:
        return data
    try:
        return data.decode(enc).lstrip("\ufeff").encode("utf-8")
    except UnicodeDecodeError:
        return data


def read_eml(path: Path) -> tuple[str, dict[str, Any]]:
    msg = email.message_from_bytes(_mail_bytes(path.read_bytes()), policy=email.policy.default)
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
    header = join(f"{h}: {msg[h]}" for h in ("Subject", "From", "To", "Cc", "Date") if msg[h])
    meta: dict[str, Any] = {"parts": len(bodies)}
    if read:
        meta["attachments"] = read
    return join([header, *bodies, *texts], "\n\n"), meta


def _own_parts(msg: EmailMessage) -> Iterator[EmailMessage]:
    """The parts of a message, not those of messages attached to it (read as attachments)."""
    yield msg
    if msg.get_content_type() != "message/rfc822" and msg.is_multipart():
        for sub in msg.get_payload():
            if isinstance(sub, EmailMessage):
                yield from _own_parts(sub)

"""Outlook .msg through python-oxmsg (the reader ``unstructured`` uses too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from instructgen import ExtractionError
from instructgen_office._text import join
from instructgen_office.attachments import read_attachments
from instructgen_office.html import html_to_text

__all__ = ["read_msg"]


def read_msg(path: Path) -> tuple[str, dict[str, Any]]:
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
    header = join(
        f"{name}: {value}"
        for name, value in (("Subject", msg.subject), ("From", msg.sender))
        if value
    )
    meta: dict[str, Any] = {"attachments": read} if read else {}
    return join([header, body, *texts], "\n\n"), meta

"""Core's helpers for extractors (``instructgen.content``) on real bytes, and the PDF reader
asking the run's image extractor for a scanned page instead of importing the OCR plugin."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import SHARED
from instructgen_pdf import PdfExtractor

import instructgen
from instructgen import Extracted, ExtractionError, Extractor, hookimpl
from instructgen.content import (
    decode_bytes,
    head_text,
    looks_like_email,
    looks_like_html,
    sniff_kind,
    unicode_encoding,
)

CORPUS = SHARED / "corpus"
MAIL = (CORPUS / "eml/fake-email.eml").read_bytes().decode("utf-8")


def test_helpers_are_public_from_instructgen() -> None:
    for name in ("decode_bytes", "looks_like_email", "sniff_kind", "check_container"):
        assert getattr(instructgen, name) is getattr(instructgen.content, name)
        assert name in instructgen.__all__


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [
        ("utf-8", None),
        ("cp1252", None),
        ("utf-8-sig", "utf-8-sig"),
        ("utf-16", "utf-16"),
        ("utf-16-be", "utf-16-be"),
        ("utf-16-le", "utf-16-le"),
        ("utf-32-be", "utf-32-be"),
        ("utf-32-le", "utf-32-le"),
    ],
)
def test_unicode_encoding_and_decoding(encoding: str, expected: str | None) -> None:
    data = ("Grüße aus Köln, " * 20).encode(encoding)
    assert unicode_encoding(data[:4096]) == expected
    text, _ = decode_bytes(data)
    assert text.lstrip("\ufeff").startswith("Grüße aus Köln")


@pytest.mark.parametrize(
    "encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-be", "utf-16-le", "utf-32"]
)
def test_an_email_is_recognised_in_any_unicode_encoding(encoding: str) -> None:
    head = MAIL.encode(encoding)[:4096]
    assert head_text(head).startswith("MIME-Version: 1.0")
    assert looks_like_email(head)
    assert not looks_like_html(head)


@pytest.mark.parametrize(
    "text",
    [
        "Title: Garden tools\nAuthor: Ann\n\nA note with two header-like lines.\n",
        "Name: value\nOther: value\nThird: x\n\nbody\n",
        "This is a test document.\nFrom: here\nTo: there\n",
    ],
)
def test_a_note_with_colons_is_not_an_email(text: str) -> None:
    assert not looks_like_email(text.encode())


def test_sniff_kind_reads_containers_and_headers(tmp_path: Path) -> None:
    def kind(rel: str) -> str | None:
        path = CORPUS / rel
        return sniff_kind(path, path.read_bytes()[:4096])

    assert kind("fake.docx") == "docx"
    assert kind("fake-power-point.pptx") == "pptx"
    assert kind("vodafone.xlsx") == "xlsx"
    assert kind("simple.odt") == "odt"
    assert kind("fake-doc.rtf") == "rtf"
    assert kind("eml/fake-email.txt") == "eml"
    # an e-mail whose first kilobyte holds an HTML part is still an e-mail
    assert kind("eml/mime-different-plain-html.eml") == "eml"
    assert kind("example-steelJIS-datasheet-utf-16.html") == "html"
    assert kind("tests-example.xls") is None  # OLE: the extension decides
    assert kind("fake-text.txt") is None


class _FakeOcr(Extractor):
    """An image reader of higher priority than the ``ocr`` plugin."""

    name = "fake-image-reader"
    extensions = ("png",)
    priority = 99
    seen: ClassVar[list[str]] = []

    def extract(self, path: Path) -> Extracted:
        _FakeOcr.seen.append(path.suffix)
        return Extracted("text the page image gave to the registered image reader")


class _Plugin:
    @hookimpl
    def register_extractors(self, registry: Any) -> None:
        registry.add(_FakeOcr)


def _scan(tmp_path: Path) -> Path:
    from PIL import Image

    pdf = tmp_path / "scan.pdf"
    Image.open(CORPUS / "img/english-and-korean.png").convert("RGB").save(pdf)
    return pdf


def test_a_scanned_pdf_page_is_read_by_the_registered_image_extractor(tmp_path: Path) -> None:
    pdf = _scan(tmp_path)
    name = instructgen.register_plugin(_Plugin(), name="fake-image-reader")
    try:
        out = PdfExtractor().extract(pdf)
    finally:
        instructgen.unregister_plugin(name)
    assert out.text == "text the page image gave to the registered image reader"
    assert out.metadata == {"pages": 1, "ocr_pages": 1}
    assert _FakeOcr.seen == [".png"]


def test_a_scanned_pdf_without_ocr_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    pdf = tmp_path / "scan.pdf"
    page = Image.open(CORPUS / "img/english-and-korean.png").convert("RGB")
    page.save(pdf, save_all=True, append_images=[page] * 5)
    monkeypatch.setenv("PATH", "/nonexistent")  # no tesseract
    calls: list[str] = []
    real = instructgen.extract_file

    def counting(path: Any) -> Extracted:
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr("instructgen_pdf.extract_file", counting)
    with pytest.raises(ExtractionError) as info:
        PdfExtractor().extract(pdf)
    assert info.value.reason == (
        "no text layer; its page images could not be read: "
        "tesseract not installed: apt-get install tesseract-ocr"
    )
    assert len(calls) == 3  # gives up after three pages failing the same way, of six


def test_boms_are_ordered_longest_first() -> None:
    from instructgen.content import BOMS

    assert BOMS[0][0] == codecs.BOM_UTF32_LE  # starts with the UTF-16 LE BOM: tested first

"""The native office/e-mail/web readers (plugin ``office``): the same words as ``unstructured``
on the corpus, the structure they keep, ``unstructured`` taking over when the native reader
is blocked or cannot read a file, and final reasons that stop the fallback."""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import SHARED
from folder_reading import read_folder
from instructgen_office import OfficeExtractor, html_to_text
from instructgen_unstructured import UnstructuredExtractor

import instructgen
from instructgen import Extracted, ExtractionError, Extractor, hookimpl

CORPUS = SHARED / "corpus"

# Every corpus file of the formats both read without pandoc. Known differences are listed.
PARITY = sorted(
    p.relative_to(CORPUS).as_posix()
    for p in CORPUS.rglob("*")
    if p.suffix.lower() in {".docx", ".pptx", ".xlsx", ".xls", ".eml", ".msg", ".html", ".htm"}
)
NOT_COMPARED = {
    "empty.xlsx": "no text in either",
    "eml/fake-encrypted.eml": "encrypted: no text in either",
    "eml/mime-no-body.eml": "no body: no text in either",
    "fake-encrypted.msg": "encrypted: no text in either",
    "emoji.xlsx": "two emoji, no words",
    # text/plain and text/html alternatives: the native reader takes the plain one, unstructured
    # the html one (its navigation links are the missing words)
    "eml/email-replace-mime-encodings-error-3.eml": "plain vs html alternative",
    # alternatives whose words differ on purpose ("first email" / "first networked email")
    "eml/mime-different-plain-html.eml": "plain vs html alternative",
}


def words(text: str) -> set[str]:
    return set(re.findall(r"\w{4,}", text.lower()))


@pytest.mark.parametrize("rel", [r for r in PARITY if r not in NOT_COMPARED])
def test_native_reader_finds_the_words_unstructured_finds(rel: str, tmp_path: Path) -> None:
    path = tmp_path / Path(rel).name
    shutil.copy(CORPUS / rel, path)
    ours = words(OfficeExtractor().extract(path).text)
    theirs = words(UnstructuredExtractor().extract(path).text)
    missing = theirs - ours
    assert len(missing) <= max(1, len(theirs) // 20), sorted(missing)[:20]


@pytest.mark.parametrize("rel", [r for r in PARITY if r.endswith(".pptx")])
def test_slides_are_read_in_the_order_unstructured_reads_them(rel: str, tmp_path: Path) -> None:
    path = tmp_path / Path(rel).name
    shutil.copy(CORPUS / rel, path)
    ours = re.findall(r"\w+", OfficeExtractor().extract(path).text)
    assert ours == re.findall(r"\w+", UnstructuredExtractor().extract(path).text)


def test_slide_shapes_top_to_bottom_through_group_coordinates(tmp_path: Path) -> None:
    # Shapes nested two groups deep, whose child coordinates are offset from the slide's: read
    # by where they are on the slide, not in the order they were added.
    path = tmp_path / "groups.pptx"
    shutil.copy(CORPUS / "group-shapes-nested.pptx", path)
    assert OfficeExtractor().extract(path).text.split() == list("ABCDEFGHIJ")
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[6])  # blank
    for text, top, left in (("bottom", 5, 1), ("top right", 1, 5), ("top left", 1, 1)):
        slide.shapes.add_textbox(Inches(left), Inches(top), Inches(3), Inches(1)).text = text
    deck.save(tmp_path / "added.pptx")
    lines = OfficeExtractor().extract(tmp_path / "added.pptx").text.splitlines()
    assert lines == ["top left", "top right", "bottom"]


def test_every_row_of_a_sheet_with_a_wrong_stored_size(tmp_path: Path) -> None:
    path = tmp_path / "cells.xlsx"
    shutil.copy(CORPUS / "more-than-1k-cells.xlsx", path)
    text = OfficeExtractor().extract(path).text
    assert text.count("x") == 40 * 26  # every cell, although the file claims no dimensions


def test_docx_keeps_headers_footers_and_table_rows(tmp_path: Path) -> None:
    path = tmp_path / "hf.docx"
    shutil.copy(CORPUS / "docx-hdrftr.docx", path)
    text = OfficeExtractor().extract(path).text
    lines = text.splitlines()
    assert lines[0] == "First header para"
    assert "Table cell1 | Table cell2" in lines  # a table inside the header, one row a line
    assert lines.index("Main document") < lines.index("para1") < lines.index("para2")


def test_html_drops_scripts_and_keeps_alt_text(tmp_path: Path) -> None:
    text = html_to_text(
        b"<html><head><title>T</title><style>p{}</style><script>var x = 1;</script></head>"
        b"<body><p>First para</p><img alt='A diagram' src='data:image/png;base64,AAAA'>"
        b"<table><tr><td>a</td><td>b</td></tr></table><!-- hidden --></body></html>"
    )
    assert text.splitlines() == ["T", "First para", "A diagram", "a | b"]
    utf16 = "<html><body><p>Größe</p></body></html>".encode("utf-16")
    assert html_to_text(utf16) == "Größe"
    latin1 = "<html><head><meta charset='iso-8859-1'></head><p>Größe</p></html>"
    assert html_to_text(latin1.encode("latin-1")) == "Größe"


def test_odt_paragraphs_spaces_and_tables(tmp_path: Path) -> None:
    ns = (
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"'
    )
    content = (
        f"<office:document-content {ns}><office:body><office:text>"
        "<text:h>Title</text:h><text:p>two<text:s text:c='2'/>spaces<text:tab/>tab</text:p>"
        "<table:table><table:table-row><table:table-cell><text:p>c1</text:p></table:table-cell>"
        "<table:table-cell><text:p>c2</text:p></table:table-cell></table:table-row></table:table>"
        "</office:text></office:body></office:document-content>"
    )
    path = tmp_path / "t.odt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        z.writestr("content.xml", content)
    assert OfficeExtractor().extract(path).text.splitlines() == [
        "Title",
        "two  spaces\ttab",
        "c1 | c2",
    ]


def test_epub_chapters_follow_the_spine(tmp_path: Path) -> None:
    path = tmp_path / "b.epub"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/epub+zip")
        z.writestr(
            "META-INF/container.xml",
            "<container><rootfiles><rootfile full-path='OEBPS/c.opf'/></rootfiles></container>",
        )
        z.writestr(
            "OEBPS/c.opf",
            "<package><manifest><item id='a' href='a.xhtml'/><item id='b' href='b.xhtml'/>"
            "</manifest><spine><itemref idref='b'/><itemref idref='a'/></spine></package>",
        )
        z.writestr("OEBPS/a.xhtml", "<?xml version='1.0'?><html><body><p>Second</p></body></html>")
        z.writestr("OEBPS/b.xhtml", "<html><body><p>First</p></body></html>")
    assert OfficeExtractor().extract(path).text.split() == ["First", "Second"]


def test_truncated_office_file_gives_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "t.docx"
    path.write_bytes((CORPUS / "simple.docx").read_bytes()[:3000])
    with pytest.raises(ExtractionError, match="docx"):
        OfficeExtractor().extract(path)


def test_directory_runs_use_the_native_reader_and_unstructured_when_it_is_blocked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "d"
    d.mkdir()
    for rel in ("simple.docx", "fake-email-attachment.msg", "example-10k-1p.html"):
        shutil.copy(CORPUS / rel, d)
    by = {f.rel: f for f in read_folder(d, workers=0).files}
    assert by["simple.docx"].extractor == "office"
    assert by["example-10k-1p.html"].extractor == "office"
    assert by["fake-email-attachment.msg"].extractor == "office"

    from instructgen import plugins

    monkeypatch.setenv("INSTRUCTGEN_BLOCK_PLUGINS", "office")
    plugins.reset()
    try:
        by = {f.rel: f for f in read_folder(d, workers=0).files}
    finally:
        monkeypatch.delenv("INSTRUCTGEN_BLOCK_PLUGINS")
        plugins.reset()
    assert by["simple.docx"].extractor == "unstructured"
    assert "favorite things" in (by["simple.docx"].text or "")
    assert by["fake-email-attachment.msg"].extractor == "unstructured"


class First(Extractor):
    name = "test-first"
    extensions = ("fin",)
    priority = 50

    def extract(self, path: Path) -> Extracted:
        final = path.read_text() == "final"
        raise ExtractionError(str(path), f"first says {path.read_text()}", final=final)


class Second(Extractor):
    name = "test-second"
    extensions = ("fin",)
    calls: ClassVar[list[str]] = []

    def extract(self, path: Path) -> Extracted:
        Second.calls.append(path.name)
        return Extracted("second read it")


class FinPlugin:
    @hookimpl
    def register_extractors(self, registry: Any) -> None:
        registry.add(First)
        registry.add(Second)


def test_a_final_reason_stops_the_fallback_and_others_fall_through(tmp_path: Path) -> None:
    (tmp_path / "a.fin").write_text("final")
    (tmp_path / "b.fin").write_text("retry")
    name = instructgen.register_plugin(FinPlugin(), name="fin-test")
    try:
        by = {f.rel: f for f in read_folder(tmp_path, workers=0).files}
    finally:
        instructgen.unregister_plugin(name)
    assert by["a.fin"].skip == "first says final" and by["a.fin"].text is None
    assert by["b.fin"].extractor == "test-second" and by["b.fin"].text == "second read it"
    assert Second.calls == ["b.fin"]


def test_damaged_and_encrypted_office_files_are_final(tmp_path: Path) -> None:
    truncated = tmp_path / "t.docx"
    truncated.write_bytes((CORPUS / "simple.docx").read_bytes()[:3000])
    # A password-protected workbook as Office writes it (ECMA-376 agile encryption: an OLE
    # container holding EncryptedPackage), made with msoffcrypto-tool.
    encrypted = tmp_path / "e.xlsx"
    encrypt(CORPUS / "vodafone.xlsx", encrypted)
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600)
    legacy = tmp_path / "legacy.docx"  # a Word 97 file under a new extension: not "encrypted"
    legacy.write_bytes(ole)
    with pytest.raises(ExtractionError) as info:
        OfficeExtractor().extract(legacy)
    assert not info.value.final and "legacy Office (OLE) file" in info.value.reason
    for path, reason in (
        (truncated, "cannot read the docx file (damaged or truncated zip)"),
        (encrypted, "encrypted or password-protected xlsx file"),
    ):
        with pytest.raises(ExtractionError) as info:
            OfficeExtractor().extract(path)
        assert info.value.reason == reason and info.value.final
    by = {f.rel: f for f in read_folder(tmp_path, workers=0).files}
    assert by["t.docx"].skip == "cannot read the docx file (damaged or truncated zip)"
    assert by["e.xlsx"].skip == "encrypted or password-protected xlsx file"
    assert by["legacy.docx"].skip and "legacy Office" in by["legacy.docx"].skip


_NS = (
    'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" '
    'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
    'xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing" '
    'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
    'xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape" '
    'xmlns:v="urn:schemas-microsoft-com:vml"'
)


def text_box_run(text: str, inner: str = "") -> str:
    """A run holding a text box the way Word writes one: a DrawingML shape, and the same box
    again as VML under mc:Fallback for older readers."""
    content = f"<w:txbxContent><w:p><w:r><w:t>{text}</w:t></w:r>{inner}</w:p></w:txbxContent>"
    return (
        f'<w:r {_NS}><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing><wp:anchor>'
        '<a:graphic><a:graphicData uri="http://schemas.microsoft.com/office/word/2010/'
        f'wordprocessingShape"><wps:wsp><wps:txbx>{content}</wps:txbx></wps:wsp>'
        "</a:graphicData></a:graphic></wp:anchor></w:drawing></mc:Choice><mc:Fallback>"
        f"<w:pict><v:shape><v:textbox>{content}</v:textbox></v:shape></w:pict></mc:Fallback>"
        "</mc:AlternateContent></w:r>"
    )


def test_docx_text_boxes_are_read_once_in_place(tmp_path: Path) -> None:
    import docx
    from docx.oxml import parse_xml

    d = docx.Document()
    d.add_paragraph("Before the box.")
    anchor = d.add_paragraph("Anchor paragraph.")
    anchor._p.append(parse_xml(text_box_run("Boxed words here.")))
    nested = d.add_paragraph("Second anchor.")
    inner = text_box_run("Inner box words.").replace(f"<w:r {_NS}>", "<w:r>")
    nested._p.append(parse_xml(text_box_run("Outer box words.", inner)))
    d.add_paragraph("After the box.")
    d.save(tmp_path / "boxes.docx")
    text = OfficeExtractor().extract(tmp_path / "boxes.docx").text
    assert text.splitlines() == [
        "Before the box.",
        "Anchor paragraph.",
        "Boxed words here.",
        "Second anchor.",
        "Outer box words.",
        "Inner box words.",  # a box in a box: its paragraph on its own line, once
        "After the box.",
    ]


def test_email_attachments_are_read_like_files(tmp_path: Path) -> None:
    from email.message import EmailMessage

    forwarded = EmailMessage()
    forwarded["Subject"] = "Harbour schedule"
    forwarded.set_content("The ferry leaves the harbour at nine.")
    msg = EmailMessage()
    msg["Subject"] = "Documents for the lighthouse"
    msg["From"] = "keeper@example.com"
    msg.set_content("See the attached files.")
    msg.add_attachment(
        (CORPUS / "simple.docx").read_bytes(),
        maintype="application",
        subtype="vnd.openxmlformats-officedocument.wordprocessingml.document",
        filename="report.docx",
    )
    msg.add_attachment(b"Beacon log, night shift.", "text", "plain", filename="../../log.txt")
    msg.add_attachment(forwarded)
    logo = (CORPUS / "img" / "english-and-korean.png").read_bytes()  # has words, but a logo
    msg.add_attachment(logo, maintype="image", subtype="png", filename="logo.png", cid="<logo>")
    msg.add_attachment(b"\x00\x01junk", "application", "octet-stream", filename="blob.bin")
    (tmp_path / "mail.eml").write_bytes(msg.as_bytes())
    (f,) = read_folder(tmp_path, workers=2).files
    text = f.text or ""
    assert text.index("See the attached files.") < text.index("Attachment: report.docx")
    assert "favorite things" in text  # the docx, read by the office reader
    assert "Attachment: log.txt\nBeacon log, night shift." in text  # the name only, no path
    assert "The ferry leaves the harbour at nine." in text  # the forwarded e-mail
    assert "RULES AND INSTRUCTIONS" not in text  # an inline image is not read
    assert f.metadata["attachments"] == [
        {"name": "report.docx", "extractor": "office"},
        {"name": "log.txt", "extractor": "text"},
        {"name": "attached.eml", "extractor": "office"},
        {"name": "blob.bin", "skip": "no extractor for '.bin' files"},
    ]


def test_attachments_nest_at_most_three_deep(tmp_path: Path) -> None:
    from email.message import EmailMessage

    inner = EmailMessage()
    inner["Subject"] = "level 5"
    inner.set_content("The deepest message.")
    for level in (4, 3, 2, 1):
        outer = EmailMessage()
        outer["Subject"] = f"level {level}"
        outer.set_content(f"Message at level {level}.")
        outer.add_attachment(inner)
        inner = outer
    (tmp_path / "nested.eml").write_bytes(inner.as_bytes())
    out = OfficeExtractor().extract(tmp_path / "nested.eml")
    # the message and three levels of attached messages in it; the fourth is not read
    for level in (1, 2, 3, 4):
        assert out.text.count(f"Message at level {level}.") == 1
    assert "The deepest message." not in out.text
    assert out.metadata["attachments"] == [{"name": "attached.eml", "extractor": "office"}]


def test_corpus_email_attachments(tmp_path: Path) -> None:
    for rel in ("eml/fake-email-attachment.eml", "fake-email-attachment.msg"):
        shutil.copy(CORPUS / rel, tmp_path / Path(rel).name)
        out = OfficeExtractor().extract(tmp_path / Path(rel).name)
        assert out.text.endswith("Attachment: fake-attachment.txt\nHey this is a fake attachment!")
        assert out.metadata["attachments"] == [{"name": "fake-attachment.txt", "extractor": "text"}]


def encrypt(src: Path, dst: Path, password: str = "s3cret") -> None:
    from msoffcrypto.format.ooxml import OOXMLFile

    with src.open("rb") as plain, dst.open("wb") as out:
        OOXMLFile(plain).encrypt(password, out)


@pytest.mark.parametrize("name", ["simple.docx", "vodafone.xlsx", "sample-presentation.pptx"])
def test_password_protected_office_files_are_skipped_with_the_reason(
    name: str, tmp_path: Path
) -> None:
    encrypt(CORPUS / name, tmp_path / name)
    (tmp_path / "notes.txt").write_text("The run goes on after a protected file.")
    by = {f.rel: f for f in read_folder(tmp_path, workers=2).files}
    fmt = name.rsplit(".", 1)[1]
    assert by[name].skip == f"encrypted or password-protected {fmt} file"
    assert by["notes.txt"].text
    for extractor in (OfficeExtractor(), UnstructuredExtractor()):  # the fallback agrees
        with pytest.raises(ExtractionError) as info:
            extractor.extract(tmp_path / name)
        assert info.value.reason == f"encrypted or password-protected {fmt} file"
        assert info.value.final


def test_a_word_97_file_named_docx_is_read_by_the_doc_reader(tmp_path: Path) -> None:
    shutil.copy(CORPUS / "fake.doc", tmp_path / "old.docx")
    (f,) = read_folder(tmp_path, workers=0).files
    assert f.extractor == "doc" and "Lorem ipsum" in (f.text or "")

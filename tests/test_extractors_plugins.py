"""Each extractor plugin on its own, on real corpus files copied to tmp_path: one file per
extension gives its words, the hard cases give the documented skip reasons, sniffing routes
wrong extensions, encodings decode, and unstructured runs with no network."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import FORMATS_25, SHARED
from instructgen_audio import AudioExtractor
from instructgen_doc import DocExtractor
from instructgen_ocr import ImageExtractor
from instructgen_office import OfficeExtractor
from instructgen_pdf import PdfExtractor
from instructgen_text import TextExtractor
from instructgen_unstructured import UnstructuredExtractor

from instructgen import ExtractionError
from instructgen.extractor import Extractor

CORPUS = SHARED / "corpus"
ALL = (
    TextExtractor,
    PdfExtractor,
    OfficeExtractor,
    UnstructuredExtractor,
    DocExtractor,
    ImageExtractor,
    AudioExtractor,
)

# One real file per extension (all 25), the extractor that reads it, and words seen in it.
PER_EXTENSION = [
    ("fake-text.txt", TextExtractor, "This is a test document"),
    ("umlauts-non-utf8.md", TextExtractor, "können"),
    ("semicolon-delimited.csv", TextExtractor, "Lorem"),
    ("single-line-object.json", TextExtractor, "Garden Trowel"),
    ("pdf/layout-parser-paper-with-empty-pages.pdf", PdfExtractor, "LayoutParser"),
    ("duplicate-paragraphs.doc", DocExtractor, "This document contains duplicates"),
    ("simple.docx", OfficeExtractor, "favorite things"),
    ("sample-presentation.pptx", OfficeExtractor, "Title Slide"),
    ("vodafone.xlsx", OfficeExtractor, "Financial performance"),
    ("tests-example.xls", OfficeExtractor, "What is 2+2"),
    ("simple.odt", OfficeExtractor, "favorite things"),
    ("language-docs/eng_spa_mult.epub", OfficeExtractor, "dignity"),
    ("fake-doc.rtf", OfficeExtractor, "My First Heading"),
    ("eml/fake-email.eml", OfficeExtractor, "This is a test email"),
    ("fake-email-attachment.msg", OfficeExtractor, "Here's the attachments"),
    ("example-10k-1p.html", OfficeExtractor, "SECURITIES EXCHANGE ACT"),
    ("fake-html-pre.htm", OfficeExtractor, "107th Congress"),
    ("img/english-and-korean.png", ImageExtractor, "RULES AND INSTRUCTIONS"),
    ("img/DA-1p.jpg", ImageExtractor, "CREATURES"),
    ("img/chi_sim_image.jpeg", ImageExtractor, "肌肤"),
    ("img/layout-parser-paper-fast.tiff", ImageExtractor, "LayoutParser"),
    ("img/table-multi-row-column-cells.tif", ImageExtractor, "Results"),
    ("audio/self-instruct-summary.wav", AudioExtractor, "language model"),
    ("audio/self-instruct-summary.mp3", AudioExtractor, "language model"),
    ("audio/self-instruct-summary.ogg", AudioExtractor, "language model"),
]

# Hard cases: file, extractor, the start of the reason a user reads.
HARD_CASES = [
    ("pdf/password.pdf", PdfExtractor, "encrypted PDF (password required)"),
    ("fake-encrypted.msg", OfficeExtractor, "encrypted e-mail (msg"),
    ("fake-encrypted.msg", UnstructuredExtractor, "encrypted e-mail (msg"),
    ("eml/fake-encrypted.eml", OfficeExtractor, "encrypted e-mail (eml"),
    ("eml/fake-encrypted.eml", UnstructuredExtractor, "encrypted e-mail (eml"),
    ("eml/mime-no-body.eml", OfficeExtractor, "no text found in the eml file"),
    ("empty.xlsx", OfficeExtractor, "no text found in the xlsx file"),
    ("empty.xlsx", UnstructuredExtractor, "no text found in the xlsx file"),
    ("fake-text-all-whitespace.txt", TextExtractor, "no text (only whitespace)"),
    ("img/example.jpg", ImageExtractor, "no text found in the image"),
    ("img/example-converted.gif", ImageExtractor, "no text found in the image"),
    ("audio/CantinaBand3.wav", AudioExtractor, "no speech found"),
]


def _copy(rel: str, tmp_path: Path) -> Path:
    dst = tmp_path / Path(rel).name
    shutil.copy(CORPUS / rel, dst)
    return dst


@pytest.fixture(autouse=True)
def _offline_transcriber(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSTRUCTGEN_TRANSCRIBER", "local")


def test_the_per_extension_table_covers_all_25_formats() -> None:
    exts = {Path(rel).suffix.lower() for rel, _, _ in PER_EXTENSION} | {".gif"}
    # the 25 formats of the corpus NOTICE (plus .md)
    assert exts - {".md"} == FORMATS_25


@pytest.mark.parametrize(
    ("rel", "cls", "words"), PER_EXTENSION, ids=[r for r, _, _ in PER_EXTENSION]
)
def test_each_extension_gives_its_words(
    rel: str, cls: type[Extractor], words: str, tmp_path: Path
) -> None:
    path = _copy(rel, tmp_path)
    ext = path.suffix.lower().lstrip(".")
    assert ext in cls.extensions
    out = cls().extract(path)
    assert words in out.text
    assert cls().sniff(path.read_bytes()[:4096]) is not False


def test_gif_is_read_through_pillow(tmp_path: Path) -> None:
    # The corpus gif is a photo; a gif made from a text image gives its words.
    from PIL import Image

    src = _copy("img/english-and-korean.png", tmp_path)
    gif = tmp_path / "page.gif"
    Image.open(src).convert("RGB").save(gif)
    out = ImageExtractor().extract(gif)
    assert "RULES AND INSTRUCTIONS" in out.text
    assert out.metadata["frames"] == 1


def _page(text: str) -> Any:
    """A line of large print on a white page (a Pillow image)."""
    from PIL import Image, ImageDraw, ImageFont

    page = Image.new("L", (900, 160), 255)
    ImageDraw.Draw(page).text((30, 40), text, fill=0, font=ImageFont.load_default(size=48))
    return page


def test_every_page_of_a_multipage_tiff_is_read(tmp_path: Path) -> None:
    # A scanned document of 24 pages: all of them, not only the first 20 (the cap for
    # animations, whose frames repeat).
    pages = [_page(f"Lighthouse page {n} of the log") for n in range(1, 25)]
    pages[0].save(tmp_path / "scan.tiff", save_all=True, append_images=pages[1:])
    out = ImageExtractor().extract(tmp_path / "scan.tiff")
    assert out.metadata["frames"] == out.metadata["frames_total"] == 24
    for n in (1, 20, 21, 24):
        assert f"Lighthouse page {n} of the log" in out.text
    assert out.text.index("page 1 of") < out.text.index("page 24 of")


def test_an_animation_is_read_from_its_first_frames(tmp_path: Path) -> None:
    frames = [_page(f"Harbour frame {n} says hello") for n in range(1, 26)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    out = ImageExtractor().extract(tmp_path / "anim.gif")
    assert (out.metadata["frames"], out.metadata["frames_total"]) == (20, 25)
    assert "Harbour frame 20 says hello" in out.text and "frame 21 " not in out.text


def test_a_decompression_bomb_image_is_refused(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("1", (20000, 20000), 1).save(tmp_path / "huge.png")  # 400 MP in a few KB
    with pytest.raises(ExtractionError) as info:
        ImageExtractor().extract(tmp_path / "huge.png")
    assert info.value.reason == (
        "image too large to read safely: "
        "Image size (400000000 pixels) exceeds limit of 178956970 pixels"
    )
    assert info.value.final


def test_small_text_is_read_again_enlarged(tmp_path: Path) -> None:
    # A page saved at 72 dpi: words about 7 px high. Read as it is, the names come out wrong
    # ("Melissa Dal", "Jacob Carlon") at a mean confidence of about 51; enlarged, right.
    from instructgen_ocr import ocr

    path = _copy("img/layout-parser-paper-fast.tiff", tmp_path)
    out = ImageExtractor().extract(path)
    assert out.metadata["ocr_scale"] > 1.5
    assert out.metadata["ocr_langs"] == "eng"  # no CJK pass needed once enlarged
    assert out.metadata["ocr_confidence"] > 80
    for name in ("Zejiang Shen", "Melissa Dell", "Jacob Carlson", "Weining Li"):
        assert name in out.text
    # a page of normal-sized print is read once, as it is
    page = ocr(_copy("img/double-column-B.jpg", tmp_path))
    assert (page.scale, page.langs) == (1.0, "eng") and page.confidence > 80


@pytest.mark.parametrize(("rel", "cls", "reason"), HARD_CASES, ids=[r for r, _, _ in HARD_CASES])
def test_hard_cases_give_the_documented_reason(
    rel: str, cls: type[Extractor], reason: str, tmp_path: Path
) -> None:
    path = _copy(rel, tmp_path)
    with pytest.raises(ExtractionError) as info:
        cls().extract(path)
    assert info.value.reason.startswith(reason), info.value.reason
    assert str(path) in str(info.value)


def test_copy_protected_pdf_still_gives_its_text(tmp_path: Path) -> None:
    out = PdfExtractor().extract(_copy("pdf/copy-protected.pdf", tmp_path))
    assert "LayoutParser" in out.text


def test_pdf_page_without_a_text_layer_is_ocrd(tmp_path: Path) -> None:
    # An image-only PDF made from a scanned page: no text layer at all.
    from PIL import Image

    pdf = tmp_path / "scan.pdf"
    Image.open(CORPUS / "img/english-and-korean.png").convert("RGB").save(pdf)
    out = PdfExtractor().extract(pdf)
    assert "RULES AND INSTRUCTIONS" in out.text
    assert out.metadata == {"pages": 1, "ocr_pages": 1}


def test_corrupt_pdf_gives_a_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.4\n" + b"\x00garbage" * 50)
    with pytest.raises(ExtractionError) as info:
        PdfExtractor().extract(bad)
    assert info.value.reason.startswith(("unreadable PDF", "no text layer"))


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        ("Grüße aus Köln – café".encode("cp1252"), "cp1252"),
        ("\ufeffGrüße aus Köln – café".encode("utf-16-le"), "utf-16"),
        ("\ufeffGrüße aus Köln – café".encode("utf-8"), "utf-8-sig"),
        ("\ufeffGrüße aus Köln – café".encode("utf-32-be"), "utf-32"),
        ("Grüße aus Köln – café".encode("utf-16-le"), "utf-16-le"),
    ],
)
def test_text_encodings(data: bytes, encoding: str, tmp_path: Path) -> None:
    path = tmp_path / "note.txt"
    path.write_bytes(data)
    out = TextExtractor().extract(path)
    assert out.text == "Grüße aus Köln – café"
    assert out.metadata["encoding"]
    if encoding != "cp1252":  # a short legacy text may be named by a sibling code page
        assert out.metadata["encoding"].replace("_", "-").lower() == encoding


@pytest.mark.parametrize("rel", ["fake-text-utf-16-be.txt", "fake-text-utf-32.txt"])
def test_utf16_and_utf32_corpus_files_read_like_the_utf8_one(rel: str, tmp_path: Path) -> None:
    ref = TextExtractor().extract(_copy("fake-text.txt", tmp_path)).text
    assert TextExtractor().extract(_copy(rel, tmp_path)).text.split() == ref.split()


def test_empty_file_is_skipped(tmp_path: Path) -> None:
    for name, cls in (
        ("e.txt", TextExtractor),
        ("e.docx", OfficeExtractor),
        ("e.docx", UnstructuredExtractor),
    ):
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(ExtractionError, match="empty file"):
            cls().extract(tmp_path / name)


def test_a_docx_named_doc_is_claimed_by_sniffing(tmp_path: Path) -> None:
    path = _copy("language-docs/eng_spa_mult.doc", tmp_path)
    head = path.read_bytes()[:4096]
    assert DocExtractor().sniff(head) is False
    for cls in (OfficeExtractor, UnstructuredExtractor):
        assert cls().sniff(head) is True
        assert "All human beings are born free" in cls().extract(path).text


def test_sniffing_recognises_each_family(tmp_path: Path) -> None:
    def head(rel: str) -> bytes:
        return (CORPUS / rel).read_bytes()[:4096]

    assert PdfExtractor().sniff(head("pdf/DA-1p.pdf"))
    assert not PdfExtractor().sniff(head("fake-text.txt"))
    assert DocExtractor().sniff(head("fake.doc"))
    assert ImageExtractor().sniff(head("img/example-converted.gif"))
    assert ImageExtractor().sniff(head("img/layout-parser-paper-fast.tiff"))
    assert not ImageExtractor().sniff(head("fake.docx"))
    assert AudioExtractor().sniff(head("audio/self-instruct-summary.ogg"))
    assert AudioExtractor().sniff(head("audio/self-instruct-summary.mp3"))
    for cls in (OfficeExtractor, UnstructuredExtractor):
        assert cls().sniff(head("eml/fake-email.eml"))
        assert cls().sniff(head("example-steelJIS-datasheet-utf-16.html"))
    assert not TextExtractor().sniff(head("pdf/DA-1p.pdf"))
    assert not TextExtractor().sniff(head("img/DA-1p.jpg"))
    assert TextExtractor().sniff(head("umlauts-non-utf8.md"))  # latin-1
    assert TextExtractor().sniff(head("fake-text-utf-16-be.txt"))  # BOM


def test_missing_tools_give_a_how_to_fix_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert ImageExtractor().unavailable_reason() == (
        "tesseract not installed: apt-get install tesseract-ocr"
    )
    assert "apt-get install catdoc" in (DocExtractor().unavailable_reason() or "")
    assert TextExtractor().unavailable_reason() is None


def test_extractors_are_picklable_and_need_no_arguments() -> None:
    for cls in ALL:
        ext = pickle.loads(pickle.dumps(cls()))
        assert isinstance(ext, cls) and ext.name and ext.extensions


OFFLINE_SCRIPT = r"""
import socket, sys
def no_network(*a, **k):
    raise OSError("network disabled in this test")
socket.socket.connect = no_network
socket.create_connection = no_network
import spacy.cli
def no_download(*a, **k):
    raise SystemExit("spacy download attempted")
spacy.cli.download = no_download
from pathlib import Path
from instructgen_unstructured.offline import ensure_offline
from instructgen_unstructured import UnstructuredExtractor
ensure_offline(); ensure_offline()
from unstructured.nlp.tokenize import sent_tokenize
assert len(sent_tokenize("One sentence here. And a second one.")) == 2
for f in sys.argv[1:]:
    print(len(UnstructuredExtractor().extract(Path(f)).text))
"""


def test_unstructured_runs_with_no_network_and_no_model_download(tmp_path: Path) -> None:
    files = [
        _copy(rel, tmp_path)
        for rel in ("simple.docx", "fake-html-with-duplicate-elements.html", "eml/fake-email.eml")
    ]
    r = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert all(int(n) > 0 for n in r.stdout.split())

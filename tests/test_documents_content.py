"""What the documents say: e-mails saved as UTF-16/32 (or with a BOM, or as .txt) read by the
e-mail reader, Word's automatic list numbers kept in docx text, and JSON read as its text
values with the keys as light context."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import SHARED
from folder_reading import read_folder
from instructgen_office import OfficeExtractor
from instructgen_text import TextExtractor

CORPUS = SHARED / "corpus"
MAIL = (CORPUS / "eml/fake-email.eml").read_bytes().decode("utf-8")

# -- e-mails in any encoding ---------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-16-le", "utf-32", "utf-8-sig"])
@pytest.mark.parametrize("suffix", [".eml", ".txt", ""])
def test_a_utf16_email_is_read_by_the_email_reader(
    encoding: str, suffix: str, tmp_path: Path
) -> None:
    # Windows tools save e-mails as UTF-16, with or without a BOM, under any name.
    (tmp_path / f"fake-email-{encoding}{suffix}").write_bytes(MAIL.encode(encoding))
    (found,) = read_folder(tmp_path, workers=0).files
    assert found.extractor == "office", (found.extractor, found.skip)
    text = found.text or ""
    assert text.startswith("Subject: Test Email\nFrom: Matthew Robinson")
    assert "This is a test email to use for unit tests." in text
    for mime_source in ("boundary", "Content-Type", "MIME-Version", "<div", "--0000"):
        assert mime_source not in text, mime_source


def test_the_corpus_email_saved_as_txt_is_read_as_an_email(tmp_path: Path) -> None:
    shutil.copy(CORPUS / "eml/fake-email.txt", tmp_path / "fake-email.txt")
    (found,) = read_folder(tmp_path, workers=0).files
    assert found.extractor == "office" and found.metadata["format"] == "eml"
    assert "Content-Type" not in (found.text or "") and "Roses are red" in (found.text or "")


def test_a_note_that_starts_with_colons_stays_with_the_text_reader(tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("Title: Garden tools\nAuthor: Ann\n\nTrowels and watering cans.\n")
    assert TextExtractor().sniff(note.read_bytes())
    (found,) = read_folder(tmp_path, workers=0).files
    assert found.extractor == "text" and found.text and found.text.startswith("Title: Garden")


# -- Word's list numbers ---------------------------------------------------------------------

_W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_LEVELS = {  # abstractNumId: [(numFmt, lvlText, start), ...] one per level
    "10": [("decimal", "%1.", 1), ("lowerLetter", "%2)", 1), ("lowerRoman", "(%3)", 1)],
    "11": [("upperRoman", "%1.", 3)],
    "12": [("decimal", "%1.", 1), ("decimal", "%1.%2", 1)],
    "13": [("bullet", "\uf0b7", 1), ("bullet", "o", 1)],
    "14": [("upperLetter", "%1.", 26)],
}


def _numbered_docx(path: Path, paragraphs: list[tuple[str | None, int, str]]) -> None:
    """A .docx whose numbering.xml holds the definitions above, lists 1-5 pointing at them
    (list 2 restarts definition 10 at 1, as Word's "Restart at 1" writes), and paragraphs
    (numId or None, ilvl, text)."""
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    numbering = document.part.numbering_part.element
    for abstract_id, levels in _LEVELS.items():
        lvls = "".join(
            f'<w:lvl w:ilvl="{i}"><w:start w:val="{start}"/><w:numFmt w:val="{fmt}"/>'
            f'<w:lvlText w:val="{text}"/></w:lvl>'
            for i, (fmt, text, start) in enumerate(levels)
        )
        numbering.insert(
            0,
            parse_xml(
                f'<w:abstractNum xmlns:w="{_W_NS}" w:abstractNumId="{abstract_id}">'
                f"{lvls}</w:abstractNum>"
            ),
        )
    lists = {"101": "10", "102": "10", "103": "11", "104": "12", "105": "13", "106": "14"}
    for num_id, abstract_id in lists.items():
        override = (
            '<w:lvlOverride w:ilvl="0"><w:startOverride w:val="1"/></w:lvlOverride>'
            if num_id == "102"
            else ""
        )
        numbering.append(
            parse_xml(
                f'<w:num xmlns:w="{_W_NS}" w:numId="{num_id}"><w:abstractNumId '
                f'w:val="{abstract_id}"/>{override}</w:num>'
            )
        )
    for num_id, ilvl, text in paragraphs:
        p = document.add_paragraph(text)
        if num_id is not None:
            p._p.get_or_add_pPr().append(
                parse_xml(
                    f'<w:numPr xmlns:w="{_W_NS}"><w:ilvl w:val="{ilvl}"/>'
                    f'<w:numId w:val="{num_id}"/></w:numPr>'
                )
            )
    document.save(str(path))


def test_word_list_numbers_are_kept_as_the_reader_sees_them(tmp_path: Path) -> None:
    path = tmp_path / "contract.docx"
    _numbered_docx(
        path,
        [
            (None, 0, "The buyer shall pay:"),
            ("101", 0, "an amount not to exceed the price;"),
            ("101", 1, "in cash;"),
            ("101", 1, "or by transfer;"),
            ("101", 2, "within ten days"),
            ("101", 0, "the costs of delivery;"),
            ("101", 1, "restarted under a new item"),
            (None, 0, "Schedule"),
            ("102", 0, "a list restarted at 1"),
            ("102", 0, "and counted on"),
            ("103", 0, "starts at three"),
            ("103", 0, "then four"),
            ("104", 0, "Scope"),
            ("104", 1, "Terms"),
            ("104", 1, "More terms"),
            ("104", 0, "Next"),
            ("104", 1, "Again"),
            ("105", 0, "a bullet"),
            ("105", 1, "a nested bullet"),
            ("106", 0, "Z comes first"),
            ("106", 0, "then AA"),
            ("101", 0, ""),  # an empty item: counted by Word, no line here
            ("0", 0, "numId 0: not a list item"),
        ],
    )
    text = OfficeExtractor().extract(path).text
    assert text.splitlines() == [
        "The buyer shall pay:",
        "1. an amount not to exceed the price;",
        "a) in cash;",
        "b) or by transfer;",
        "(i) within ten days",
        "2. the costs of delivery;",
        "a) restarted under a new item",
        "Schedule",
        "1. a list restarted at 1",
        "2. and counted on",
        "III. starts at three",
        "IV. then four",
        "1. Scope",
        "1.1 Terms",
        "1.2 More terms",
        "2. Next",
        "2.1 Again",
        "• a bullet",
        "◦ a nested bullet",
        "Z. Z comes first",
        "AA. then AA",
        "numId 0: not a list item",
    ]


def test_list_numbers_in_table_cells_count_on_in_reading_order(tmp_path: Path) -> None:
    import docx
    from docx.oxml import parse_xml

    path = tmp_path / "table.docx"
    _numbered_docx(path, [("101", 0, "before the table")])
    document = docx.Document(str(path))
    cell = document.add_table(rows=1, cols=2).rows[0].cells[0]
    cell.paragraphs[0].text = "inside a cell"
    cell.paragraphs[0]._p.get_or_add_pPr().append(
        parse_xml(f'<w:numPr xmlns:w="{_W_NS}"><w:ilvl w:val="0"/><w:numId w:val="101"/></w:numPr>')
    )
    document.add_paragraph("after the table", style=None)._p.get_or_add_pPr().append(
        parse_xml(f'<w:numPr xmlns:w="{_W_NS}"><w:ilvl w:val="0"/><w:numId w:val="101"/></w:numPr>')
    )
    document.save(str(path))
    lines = OfficeExtractor().extract(path).text.splitlines()
    assert lines == ["1. before the table", "2. inside a cell", "3. after the table"]


def test_list_numbers_from_a_paragraph_style(tmp_path: Path) -> None:
    # python-docx's template numbers "List Number" paragraphs through the style's numPr.
    import docx

    document = docx.Document()
    for text in ("first", "second", "third"):
        document.add_paragraph(text, style="List Number")
    document.save(str(tmp_path / "styled.docx"))
    lines = OfficeExtractor().extract(tmp_path / "styled.docx").text.splitlines()
    assert lines == ["1. first", "2. second", "3. third"]


def test_corpus_bullet_lists_keep_their_bullets(tmp_path: Path) -> None:
    shutil.copy(CORPUS / "category-level.docx", tmp_path / "c.docx")
    lines = OfficeExtractor().extract(tmp_path / "c.docx").text.splitlines()
    start = lines.index("• A top level list item")
    assert lines[start : start + 4] == [
        "• A top level list item",
        "◦ Next level",
        "◦ Same",
        "• Second top-level list item",
    ]


# -- JSON --------------------------------------------------------------------------------------


def _read_json(tmp_path: Path, obj: object | str, name: str = "data.json") -> tuple[str, dict]:
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj, indent=2), encoding="utf-8")
    out = TextExtractor().extract(path)
    return out.text, out.metadata


def test_corpus_json_records_read_as_one_line_each(tmp_path: Path) -> None:
    shutil.copy(CORPUS / "arbitrary-records.json", tmp_path / "r.json")
    assert TextExtractor().extract(tmp_path / "r.json").text.splitlines() == [
        "sku: GRD-8842; name: Garden Trowel; price: 12.5; in_stock: true",
        "sku: GRD-1290; name: Watering Can; price: 18.0; in_stock: false",
        "sku: GRD-3317; name: Pruning Shears; price: 24.99; in_stock: true",
    ]
    shutil.copy(CORPUS / "not-unstructured-payload.json", tmp_path / "p.json")
    assert TextExtractor().extract(tmp_path / "p.json").text.splitlines() == [
        "id: Sample-1; name: Sample 1",
        "description: This is sample data #1",
    ]


def test_element_json_reads_as_its_text_not_its_key_paths(tmp_path: Path) -> None:
    # The shape document tools (unstructured's elements_to_json) write: per element a hex id,
    # a type, the text, and metadata that is mostly the same for every element.
    paragraphs = [
        line.strip()
        for line in (CORPUS / "book-war-and-peace-1p.txt").read_text(encoding="utf-8").split("\n\n")
        if len(line.strip()) > 40
    ][:40]
    assert len(paragraphs) >= 10
    elements = [
        {
            "element_id": f"{i:032x}",
            "metadata": {
                "filename": "war-and-peace.html",
                "filetype": "text/html",
                "languages": ["eng"],
                "parent_id": f"{i + 1000:032x}",
                "text_as_html": f"<p>{text}</p>",
            },
            "text": text,
            "type": "NarrativeText",
        }
        for i, text in enumerate(paragraphs)
    ]
    text, meta = _read_json(tmp_path, elements)
    readable = sum(len(p) for p in paragraphs)
    for p in paragraphs:
        assert " ".join(p.split()) in " ".join(text.split())
    assert text.count("filetype: text/html") == 1  # said once for all elements
    assert "[0]" not in text and "element_id" not in text and f"{3:032x}" not in text
    assert len(text) < 1.3 * readable, (len(text), readable)
    assert meta["json"] == "records"


def test_json_context_keys_nested_values_and_number_runs(tmp_path: Path) -> None:
    text, _ = _read_json(
        tmp_path,
        {
            "title": "Pruning roses",
            "author": {"name": "Ann Lee", "email": "ann@example.com"},
            "tags": ["garden", "roses"],
            "body": "Cut just above an outward-facing bud, at an angle, in late winter.",
            "embedding": [0.125] * 1536,
            "draft": False,
            "notes": None,
            "id": "3f2b8c1e-4a5d-4e6f-9a7b-1c2d3e4f5a6b",
        },
    )
    assert text.splitlines() == [
        "title: Pruning roses; tags: garden, roses; embedding: 1536 numbers; draft: false",
        "author: name: Ann Lee; email: ann@example.com",
        "Cut just above an outward-facing bud, at an angle, in late winter.",
    ]


def test_json_lines_and_invalid_json(tmp_path: Path) -> None:
    rows = "\n".join(json.dumps({"q": f"question {i}", "a": f"answer {i}"}) for i in range(3))
    text, meta = _read_json(tmp_path, rows, "rows.jsonl")
    assert text.splitlines() == [f"q: question {i}; a: answer {i}" for i in range(3)]
    text, meta = _read_json(tmp_path, '{"broken": "json', "bad.json")
    assert text == '{"broken": "json' and meta["json"] == "invalid, read as text"


def test_huge_or_deep_json_falls_back_to_its_string_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import instructgen_text.json_values as json_values

    deep = "[" * 100_000 + '"buried treasure map"' + "]" * 100_000
    text, meta = _read_json(tmp_path, deep, "deep.json")
    assert text == "buried treasure map" and meta["json"].startswith("nested too deeply")

    monkeypatch.setattr(json_values, "MAX_TREE_BYTES", 1000)
    records = [{"key_name": f"value {i} \\u00e9", "n": i, "id": f"{i:032x}"} for i in range(50)]
    text, meta = _read_json(tmp_path, records, "big.json")
    assert meta["json"].startswith("over ")
    assert text.splitlines()[:2] == ["value 0 \\u00e9", "value 1 \\u00e9"]
    assert "key_name" not in text and f"{7:032x}" not in text


@pytest.mark.parametrize(
    ("rel", "phrase"),
    [
        ("eml/mime-simple.eml", "This is a simple email message."),
        ("eml/mime-different-plain-html.eml", "sent by Ray Tomlinson in 1971"),
    ],
)
def test_an_email_with_an_html_part_early_is_read_as_an_email(
    rel: str, phrase: str, tmp_path: Path
) -> None:
    # Its first kilobyte holds "<html": it used to be read as a web page, MIME source and all.
    shutil.copy(CORPUS / rel, tmp_path / "m.eml")
    out = OfficeExtractor().extract(tmp_path / "m.eml")
    assert out.metadata["format"] == "eml"
    assert "boundary123" not in out.text and "Content-Type" not in out.text
    assert out.text.count(phrase) == 1  # the plain alternative, once


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-8-sig"])
def test_the_unstructured_fallback_reads_utf16_emails_too(encoding: str, tmp_path: Path) -> None:
    from instructgen_unstructured import UnstructuredExtractor

    path = tmp_path / "m.eml"
    path.write_bytes(MAIL.encode(encoding))
    text = UnstructuredExtractor().extract(path).text
    assert "This is a test email to use for unit tests." in text
    assert "\x00" not in text and "MIME-Version" not in text

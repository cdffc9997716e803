"""PDF: the native text layer with pdfium (fast); a page without one is rendered to an image
and read by whichever extractor the run uses for images (the ``ocr`` plugin: tesseract)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from instructgen import (
    Extracted,
    ExtractionError,
    Extractor,
    ExtractorRegistry,
    extract_file,
    hookimpl,
    report_progress,
)

__all__ = ["PdfExtractor"]

MIN_CHARS_PER_PAGE = 20
RENDER_SCALE = 2  # 144 dpi: small print stays readable for OCR


class PdfExtractor(Extractor):
    name = "pdf"
    extensions = ("pdf",)
    mime_types = ("application/pdf",)
    priority = 10
    requires = ("pypdfium2", "PIL")  # PIL: scanned pages go to OCR
    install_with = "instructgen[documents]"

    def sniff(self, head: bytes) -> bool:
        return head.lstrip()[:5] == b"%PDF-"

    def extract(self, path: Path) -> Extracted:
        import pypdfium2 as pdfium

        try:
            pdf = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError as exc:
            msg = str(exc)
            if "password" in msg.lower():
                raise ExtractionError(str(path), "encrypted PDF (password required)") from None
            raise ExtractionError(str(path), f"unreadable PDF: {msg}") from None
        pages: list[str] = []
        ocr_pages = 0
        image_failures: list[str] = []
        try:
            with tempfile.TemporaryDirectory(prefix="instructgen-pdf-") as tmp:
                for i in range(len(pdf)):
                    page = pdf[i]
                    textpage = page.get_textpage()
                    text = textpage.get_text_bounded().replace("\r\n", "\n").replace("\r", "\n")
                    textpage.close()
                    if len(text.strip()) < MIN_CHARS_PER_PAGE and not _given_up(image_failures):
                        try:
                            read = _read_page_image(page, Path(tmp) / f"page-{i + 1}.png")
                        except ExtractionError as exc:
                            image_failures.append(exc.reason)
                        else:
                            image_failures.append("")
                            if len(read.strip()) > len(text.strip()):
                                text, ocr_pages = read, ocr_pages + 1
                    page.close()
                    pages.append(text.strip())
                    report_progress()  # a long scan keeps moving: the time limit is per page
        finally:
            pdf.close()
        text = "\n\n".join(p for p in pages if p)
        if not text.strip():
            reason = "no text layer and no text found by OCR"
            unread = [r for r in image_failures if r and not r.startswith("no text found")]
            if unread:  # e.g. no OCR installed: say how to get it
                reason = f"no text layer; its page images could not be read: {unread[0]}"
            raise ExtractionError(str(path), reason)
        return Extracted(text, {"pages": len(pages), "ocr_pages": ocr_pages})


def _given_up(failures: list[str]) -> bool:
    """Three pages in a row whose images could not be read for the same reason, not for
    having no text (no image reader installed, OCR failing): rendering more would only cost."""
    last = failures[-3:]
    same = len(last) == 3 and len(set(last)) == 1
    return same and bool(last[0]) and not last[0].startswith("no text found")


def _read_page_image(page: Any, target: Path) -> str:
    """Render a page to a PNG file and read it the way a run reads an image file: with the
    image extractor of the run's plugins (OCR), through ``extract_file``."""
    image = page.render(scale=RENDER_SCALE).to_pil()
    if image.mode not in ("RGB", "L", "1"):
        image = image.convert("RGB")
    image.save(target, format="PNG", compress_level=1)
    try:
        return extract_file(target).text
    finally:
        target.unlink(missing_ok=True)


@hookimpl
def register_extractors(registry: ExtractorRegistry) -> None:
    registry.add(PdfExtractor)

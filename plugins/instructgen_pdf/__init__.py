"""PDF: the native text layer with pdfium (fast); pages without one are OCR'd with tesseract."""

from __future__ import annotations

import shutil
from pathlib import Path

from instructgen.errors import ExtractionError
from instructgen.extractor import Extracted, Extractor, report_progress
from instructgen.hookspecs import hookimpl
from instructgen.registry import ExtractorRegistry

__all__ = ["PdfExtractor"]

MIN_CHARS_PER_PAGE = 20


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
        ocr_missing = False
        try:
            for i in range(len(pdf)):
                page = pdf[i]
                textpage = page.get_textpage()
                text = textpage.get_text_bounded().replace("\r\n", "\n").replace("\r", "\n")
                textpage.close()
                if len(text.strip()) < MIN_CHARS_PER_PAGE:
                    if shutil.which("tesseract"):
                        ocr = _ocr_page(page)
                        if len(ocr.strip()) > len(text.strip()):
                            text, ocr_pages = ocr, ocr_pages + 1
                    else:
                        ocr_missing = True
                page.close()
                pages.append(text.strip())
                report_progress()  # a long scan keeps moving: the time limit is per page
        finally:
            pdf.close()
        text = "\n\n".join(p for p in pages if p)
        if not text.strip():
            reason = "no text layer and no text found by OCR"
            if ocr_missing:
                reason = "no text layer; install tesseract-ocr to read scanned pages"
            raise ExtractionError(str(path), reason)
        return Extracted(text, {"pages": len(pages), "ocr_pages": ocr_pages})


def _ocr_page(page: object) -> str:
    from instructgen_ocr import ocr_image

    image = page.render(scale=2).to_pil()  # type: ignore[attr-defined]
    return ocr_image(image).text


@hookimpl
def register_extractors(registry: ExtractorRegistry) -> None:
    registry.add(PdfExtractor)

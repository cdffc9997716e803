"""Images (png, jpg, jpeg, tiff, tif, gif, bmp, webp) through tesseract OCR.

Languages: ``INSTRUCTGEN_OCR_LANGS`` (e.g. ``eng+deu``), otherwise English plus every installed
Chinese/Japanese/Korean pack (``tesseract-ocr-chi-sim``...).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

from instructgen.errors import ExtractionError
from instructgen.extractor import Extracted, Extractor
from instructgen.hookspecs import hookimpl
from instructgen.registry import ExtractorRegistry

__all__ = ["ImageExtractor", "tesseract_langs"]

_EXTRA = ("chi_sim", "chi_tra", "jpn", "kor")


@cache
def tesseract_langs() -> str:
    chosen = os.environ.get("INSTRUCTGEN_OCR_LANGS")
    if chosen:
        return chosen
    try:
        out = subprocess.run(
            ["tesseract", "--list-langs"], capture_output=True, text=True, timeout=30
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return "eng"
    langs = ["eng"] + [lang for lang in _EXTRA if lang in out]
    return "+".join(langs)


class ImageExtractor(Extractor):
    name = "ocr"
    extensions = ("png", "jpg", "jpeg", "tiff", "tif", "gif", "bmp", "webp")
    mime_types = ("image/png", "image/jpeg", "image/tiff", "image/gif")
    priority = 10

    def unavailable_reason(self) -> str | None:
        if shutil.which("tesseract") is None:
            return "tesseract not installed: apt-get install tesseract-ocr"
        return None

    def sniff(self, head: bytes) -> bool:
        return head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"II*\x00", b"MM\x00*"))

    def extract(self, path: Path) -> Extracted:
        import pytesseract
        from PIL import Image, ImageSequence, UnidentifiedImageError

        try:
            image = Image.open(path)
        except (UnidentifiedImageError, OSError) as exc:
            raise ExtractionError(str(path), f"not a readable image: {exc}") from None
        texts = []
        with image:
            frames = [f.copy() for f in ImageSequence.Iterator(image)][:20]
        for frame in frames:
            if frame.mode not in ("RGB", "L"):
                frame = frame.convert("RGB")
            text = pytesseract.image_to_string(frame, lang=tesseract_langs())
            if text.strip() and text.strip() not in texts:
                texts.append(text.strip())
        text = "\n\n".join(texts)
        words = [w for w in text.split() if sum(c.isalnum() for c in w) >= 2]
        if len(words) < 3:
            raise ExtractionError(str(path), "no text found in the image")
        return Extracted(text, {"frames": len(frames), "ocr_langs": tesseract_langs()})


@hookimpl
def register_extractors(registry: ExtractorRegistry) -> None:
    registry.add(ImageExtractor)

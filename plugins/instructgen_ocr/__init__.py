"""Images (png, jpg, jpeg, tiff, tif, gif, bmp, webp) through tesseract OCR.

Languages: ``INSTRUCTGEN_OCR_LANGS`` (e.g. ``eng+deu``) when set. Otherwise English first.
When that read is poor (mean word confidence under 60; English pages score 80-90):

- text too small for tesseract (median word height under 12 px, e.g. a page saved at 72 dpi)
  is read again from the image enlarged to about 16 px (tesseract wants an x-height of about
  20 px: https://tesseract-ocr.github.io/tessdoc/ImproveQuality.html). The corpus's 72-dpi
  page scan goes from confidence 51 to 90 and its author names come out right;
- if still poor, a pass with every installed Chinese/Japanese/Korean pack
  (``tesseract-ocr-chi-sim``...): CJK text read as Latin scores about 20. Not when English
  found no word at all (a blank page, a photo).

The most confident read is kept. One English pass is 2-3x faster than ``eng+chi_sim``.

tesseract runs with ``OMP_THREAD_LIMIT=1`` unless that variable is set: extraction already runs
one worker process per core, and tesseract's OpenMP threads on top of that were measured 8x
slower on a 2-core machine.
"""

from __future__ import annotations

import os
import shlex
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from instructgen import (
    Extracted,
    ExtractionError,
    Extractor,
    ExtractorRegistry,
    hookimpl,
    report_progress,
)

__all__ = ["ImageExtractor", "OcrResult", "ocr", "ocr_image", "tesseract_langs"]

_EXTRA = ("chi_sim", "chi_tra", "jpn", "kor")
_CONFIDENT = 60.0
_SMALL_TEXT = 12  # median word height (px) under which a poor read is retried enlarged
_TARGET_TEXT = 16.0
_MAX_SCALE = 3.0
_TIMEOUT = 600.0
_ANIMATION_FRAMES = 20
_NATIVE = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}  # leptonica reads these itself


@cache
def _installed() -> tuple[str, ...]:
    try:
        out = subprocess.run(
            ["tesseract", "--list-langs"], capture_output=True, text=True, timeout=30
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(out[1:]) if out and out[0].startswith("List") else tuple(out)


def _extra_langs() -> list[str]:
    return [lang for lang in _EXTRA if lang in _installed()]


def tesseract_langs() -> str:
    """Every language the automatic choice may use (``INSTRUCTGEN_OCR_LANGS`` when set)."""
    return os.environ.get("INSTRUCTGEN_OCR_LANGS") or "+".join(["eng", *_extra_langs()])


@dataclass(frozen=True)
class OcrResult:
    text: str
    confidence: float  # mean word confidence, 0-100 (0 when no word was found)
    words: int
    langs: str
    text_height: float = 0.0  # median word height in pixels (0 when no word was found)
    scale: float = 1.0  # how much the image was enlarged for this read


def _run(image: Path, langs: str) -> OcrResult:
    env = dict(os.environ)
    env.setdefault("OMP_THREAD_LIMIT", "1")
    extra = shlex.split(os.environ.get("INSTRUCTGEN_OCR_CONFIG", ""))
    with tempfile.TemporaryDirectory(prefix="instructgen-ocr-") as tmp:
        base = Path(tmp) / "out"
        cmd = ["tesseract", str(image), str(base), "-l", langs, *extra, "txt", "tsv"]
        try:
            proc = subprocess.run(cmd, capture_output=True, env=env, timeout=_TIMEOUT)
        except FileNotFoundError:
            raise ExtractionError(
                str(image), "tesseract not installed: apt-get install tesseract-ocr"
            ) from None
        except subprocess.TimeoutExpired:
            raise ExtractionError(str(image), f"OCR took over {_TIMEOUT:g} s") from None
        txt, tsv = base.with_suffix(".txt"), base.with_suffix(".tsv")
        if proc.returncode != 0 or not txt.exists():
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise ExtractionError(str(image), f"tesseract failed: {(err or ['?'])[-1][:200]}")
        text = txt.read_text(encoding="utf-8", errors="replace").strip()
        confs: list[float] = []
        heights: list[int] = []
        for line in tsv.read_text(encoding="utf-8", errors="replace").splitlines()[1:]:
            cols = line.split("\t")
            if len(cols) >= 12 and cols[11].strip():
                try:
                    conf, height = float(cols[10]), int(cols[9])
                except ValueError:
                    continue
                if conf >= 0:
                    confs.append(conf)
                    heights.append(height)
    mean = sum(confs) / len(confs) if confs else 0.0
    return OcrResult(text, mean, len(confs), langs, statistics.median(heights) if heights else 0.0)


def _enlarged(image: Path, scale: float, tmp: str) -> Path:
    from PIL import Image

    out = Path(tmp) / "enlarged.png"
    with Image.open(image) as im:
        rgb = im if im.mode in ("RGB", "L", "1") else im.convert("RGB")
        size = (round(im.width * scale), round(im.height * scale))
        rgb.resize(size, Image.Resampling.LANCZOS).save(out, format="PNG", compress_level=1)
    return out


def ocr(image: Path) -> OcrResult:
    """OCR an image file tesseract can read (png, jpeg, tiff, bmp): see the module's text for
    the passes it may take. Returns the most confident read."""
    chosen = os.environ.get("INSTRUCTGEN_OCR_LANGS")
    best = _run(image, chosen or "eng")
    if best.confidence >= _CONFIDENT:
        return best
    with tempfile.TemporaryDirectory(prefix="instructgen-ocr-") as tmp:
        source = image
        if 0 < best.text_height < _SMALL_TEXT:
            scale = min(_MAX_SCALE, _TARGET_TEXT / best.text_height)
            try:
                source = _enlarged(image, scale, tmp)
            except (OSError, ValueError):  # an image tesseract reads but Pillow does not
                return best
            retry = replace(_run(source, best.langs), scale=round(scale, 2))
            if retry.confidence > best.confidence:
                best = retry
            else:
                source = image
        # A blank page or a photo (no word at all in English) is not CJK either: CJK text
        # read as English gives words of low confidence, not none.
        if chosen or not _extra_langs() or best.confidence >= _CONFIDENT or best.words == 0:
            return best
        cjk = replace(_run(source, tesseract_langs()), scale=best.scale)
    return cjk if cjk.confidence > best.confidence else best


def ocr_image(image: Any) -> OcrResult:
    """OCR a Pillow image (written to a temporary PNG for tesseract)."""
    with tempfile.TemporaryDirectory(prefix="instructgen-ocr-") as tmp:
        path = Path(tmp) / "page.png"
        if image.mode not in ("RGB", "L", "1"):
            image = image.convert("RGB")
        image.save(path, format="PNG", compress_level=1)
        return ocr(path)


class ImageExtractor(Extractor):
    name = "ocr"
    extensions = ("png", "jpg", "jpeg", "tiff", "tif", "gif", "bmp", "webp")
    mime_types = ("image/png", "image/jpeg", "image/tiff", "image/gif")
    priority = 10
    slow = True
    requires = ("PIL",)
    install_with = "instructgen[documents]"

    def unavailable_reason(self) -> str | None:
        if shutil.which("tesseract") is None:
            return "tesseract not installed: apt-get install tesseract-ocr"
        return None

    def sniff(self, head: bytes) -> bool:
        return head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"II*\x00", b"MM\x00*"))

    def extract(self, path: Path) -> Extracted:
        from PIL import Image, ImageSequence, UnidentifiedImageError

        try:
            image = Image.open(path)
        except Image.DecompressionBombError as exc:  # Pillow's guard: 2 x MAX_IMAGE_PIXELS
            reason = f"image too large to read safely: {str(exc).split(', could')[0]}"
            raise ExtractionError(str(path), reason, final=True) from None
        except (UnidentifiedImageError, OSError) as exc:
            raise ExtractionError(str(path), f"not a readable image: {exc}") from None
        with image:
            n_frames = getattr(image, "n_frames", 1)
            if n_frames == 1 and path.suffix.lower() in _NATIVE and image.format != "GIF":
                results = [ocr(path)]  # tesseract reads the file itself: no re-encoding
            else:
                # Every page of a multi-page TIFF (a scanned document); the first frames of an
                # animation (GIF, WebP, APNG), which repeat themselves. One frame in memory at
                # a time.
                limit = n_frames if image.format == "TIFF" else _ANIMATION_FRAMES
                results = []
                for i, frame in enumerate(ImageSequence.Iterator(image)):
                    if i >= limit:
                        break
                    results.append(ocr_image(frame.copy()))
                    report_progress()  # a long multi-page scan: the time limit is per page
        texts: list[str] = []
        for r in results:
            if r.text and r.text not in texts:
                texts.append(r.text)
        text = "\n\n".join(texts)
        words = [w for w in text.split() if sum(c.isalnum() for c in w) >= 2]
        cjk = sum(1 for c in text if "\u3040" <= c <= "\u30ff" or "\u4e00" <= c <= "\u9fff")
        if len(words) < 3 and cjk < 4:
            raise ExtractionError(str(path), "no text found in the image")
        langs = sorted({r.langs for r in results})
        confidence = sum(r.confidence for r in results) / len(results)
        return Extracted(
            text,
            {
                "frames": len(results),
                "frames_total": n_frames,
                "ocr_langs": "/".join(langs),
                "ocr_confidence": round(confidence, 1),
                "ocr_scale": max(r.scale for r in results),
            },
        )


@hookimpl
def register_extractors(registry: ExtractorRegistry) -> None:
    registry.add(ImageExtractor)

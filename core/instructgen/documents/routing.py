"""Choosing the extractor for a file — by extension, by the MIME type the extension stands for,
by what the content shows — and reading one file with it, with fallbacks and one skip reason.
``extract_one`` is what every executor runs for a file, in whatever process; ``extract_file``
is the same for extractors of files that hold other files (e-mail attachments)."""

from __future__ import annotations

import mimetypes
import re
import time
from pathlib import Path

import instructgen.plugins as plugins
from instructgen.documents.chunking import chunk_text
from instructgen.documents.types import ExtractResult
from instructgen.errors import ExtractionError
from instructgen.extractor import Extracted, Extractor
from instructgen.registry import Entry, missing_requirement

__all__ = ["MAX_NESTING", "extract_file", "extract_one", "extractors_for", "is_slow"]

MAX_NESTING = 3  # a file inside a file inside a file: deeper ones are not read
_depth = 0


def extractors_for(suffix: str) -> list[Entry[type[Extractor]]]:
    """The extractors registered for a file extension, best first; for an extension no
    extractor names, those registered for the MIME type it stands for (``mimetypes``)."""
    reg = plugins.extractors()
    found = reg.for_extension(suffix)
    if not found and suffix:
        mime, _ = mimetypes.guess_type(f"file{suffix.lower()}", strict=False)
        if mime:
            found = reg.for_mime(mime)
    return found


def is_slow(suffix: str) -> bool:
    """Whether the best extractor for this extension is ``slow`` (OCR, transcription)."""
    best = extractors_for(suffix)[:1]
    return bool(best) and bool(getattr(best[0].obj, "slow", False))


def _candidates(path: Path, head: bytes) -> list[tuple[str, Extractor]]:
    """Extractor entries to try, best first. Extension matches whose content agrees come first,
    then the other extension matches, then extractors recognising the content; with a wrong
    or missing extension, the content's extractors come first."""
    reg = plugins.extractors()
    by_ext = extractors_for(path.suffix)
    instances = {e.name: e.obj() for e in reg}
    verdict = {e.name: instances[e.name].sniff(head) for e in reg}
    sniffed = [
        e
        for e in sorted(reg, key=lambda e: (-e.meta["priority"], e.name))
        if verdict[e.name] is True
    ]
    agreeing = [e for e in by_ext if verdict[e.name] is not False]
    if agreeing:  # the extension looks right: its extractors first, then others that
        # recognise the content (a Word 97 file named .docx is read by the .doc reader)
        ordered = agreeing + [e for e in by_ext if e not in agreeing]
        ordered += [e for e in sniffed if e not in ordered]
    else:  # wrong or unknown extension: trust the content first
        ordered = sniffed + [e for e in by_ext if e not in sniffed]
    return [(e.name, instances[e.name]) for e in ordered]


def _readers_of(suffix: str) -> set[str]:
    """Names of the extractors registered for this file extension."""
    return {e.name for e in plugins.extractors().for_extension(suffix)}


# Characters that do not occur in text: most C0 controls, DEL, and U+FFFD (what a decoder
# puts for bytes it could not read).
_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f\ufffd]")
_SAMPLE = 1 << 16


def not_text(text: str) -> bool:
    """Whether ``text`` is mostly binary (NUL bytes, control characters), judged on samples
    from its start, middle and end so that even a huge one costs little."""
    if len(text) <= 3 * _SAMPLE:
        sample = text
    else:
        mid = len(text) // 2
        sample = text[:_SAMPLE] + text[mid : mid + _SAMPLE] + text[-_SAMPLE:]
    return len(_NOT_TEXT.findall(sample)) > len(sample) // 10


def extract_one(path: str, rel: str, size: int = 0, chunk_size: int | None = None) -> ExtractResult:
    """Extract one file in this process (and chunk it when ``chunk_size`` is given, so that
    chunking runs under the same limits). Top-level and picklable, for any executor."""
    start = time.monotonic()
    p = Path(path)
    result = ExtractResult(rel=rel, path=path, size=size)
    try:
        with p.open("rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        result.skip = f"unreadable: {exc.strerror or exc}"
        return result
    candidates = _candidates(p, head)
    if not candidates:
        result.skip = f"no extractor for '{p.suffix or '(no extension)'}' files"
        return result
    reasons: list[str] = []
    needs_extra = False
    for name, extractor in candidates:
        if needs_extra and name not in _readers_of(p.suffix):
            # This format's readers need an extra: skip with that reason rather than read the
            # file as something else (HTML or RTF markup as plain text).
            break
        missing = missing_requirement(extractor)
        if missing:
            reasons.append(missing)
            needs_extra = needs_extra or name in _readers_of(p.suffix)
            continue
        why_not = extractor.unavailable_reason()
        if why_not:
            reasons.append(why_not)
            continue
        try:
            out = extractor.extract(p)
        except ExtractionError as exc:
            reasons.append(exc.reason)
            if exc.final:
                break
            continue
        except Exception as exc:  # a bug or a hostile file must not stop the run
            reasons.append(f"{name} failed: {type(exc).__name__}: {exc}"[:300])
            continue
        if not out.text.strip():
            reasons.append(f"{name}: no text")
        elif not_text(out.text):
            reasons.append("not text (binary content)")
        else:
            result.extractor, result.text, result.metadata = name, out.text, out.metadata
            break
    if result.text is None:
        result.skip = reasons[0] if reasons else "no text"
    elif chunk_size:
        result.chunks = chunk_text(result.text, chunk_size)
    result.seconds = round(time.monotonic() - start, 3)
    return result


def extract_file(path: str | Path) -> Extracted:
    """Read a file the way a directory run reads one (extractor chosen by extension and
    content, fallbacks, the same skip reasons), in this process: for extractors of files that
    hold other files, such as e-mail attachments. ``metadata["extractor"]`` names the reader.
    Raises ``ExtractionError`` with the run's reason when no extractor gives text, or when
    files are nested more than ``MAX_NESTING`` deep."""
    global _depth
    p = Path(path)
    if _depth >= MAX_NESTING:
        raise ExtractionError(str(p), f"nested more than {MAX_NESTING} files deep")
    _depth += 1
    try:
        res = extract_one(str(p), p.name)
    finally:
        _depth -= 1
    if res.text is None:
        raise ExtractionError(str(p), res.skip or "no text")
    return Extracted(res.text, {"extractor": res.extractor, **res.metadata})

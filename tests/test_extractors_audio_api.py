"""Audio through the OpenAI transcription API when a key or base URL is configured."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import SHARED, TEST_KEY
from instructgen_audio import AudioExtractor
from wire_server import WireServer

from instructgen import ExtractionError


def api_audio(
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    server: WireServer,
    key: str | None = TEST_KEY,
) -> Path:
    """A corpus recording in ``tmp_path``, with the transcription API pointed at ``server``."""
    audio = tmp_path / name
    shutil.copy(SHARED / "corpus" / "audio" / name, audio)
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
    if key is not None:
        monkeypatch.setenv("OPENAI_API_KEY", key)
    return audio


def test_transcription_api_is_used_when_configured(
    wire_server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audio = api_audio("self-instruct-summary.mp3", tmp_path, monkeypatch, wire_server)
    out = AudioExtractor().extract(audio)
    assert out.text == wire_server.transcription_text
    assert out.metadata["transcriber"] == "openai whisper-1"
    body = wire_server.transcriptions[0]
    assert b'name="model"' in body and b"whisper-1" in body
    assert audio.read_bytes()[:1000] in body  # the file itself was uploaded


def test_transcription_api_errors_are_a_skip_reason(
    wire_server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audio = api_audio("self-instruct-summary.wav", tmp_path, monkeypatch, wire_server, key="wrong")
    with pytest.raises(ExtractionError, match="transcription API: HTTP 401"):
        AudioExtractor().extract(audio)


def test_local_transcriber_when_forced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    audio = tmp_path / "talk.ogg"
    shutil.copy(SHARED / "corpus" / "audio" / "self-instruct-summary.ogg", audio)
    monkeypatch.setenv("OPENAI_API_KEY", "set-but-not-used")
    monkeypatch.setenv("INSTRUCTGEN_TRANSCRIBER", "local")
    out = AudioExtractor().extract(audio)
    assert "language model" in out.text.lower()
    assert out.metadata["transcriber"] == "faster-whisper tiny.en"


def uploaded_wavs(bodies: list[bytes]) -> list[tuple[int, int, float]]:
    """(channels, rate, seconds) of the WAV file in each multipart upload."""
    import io
    import wave

    out = []
    for body in bodies:
        start = body.index(b"RIFF")
        end = body.rindex(b"\r\n--")
        with wave.open(io.BytesIO(body[start:end])) as w:
            out.append((w.getnchannels(), w.getframerate(), w.getnframes() / w.getframerate()))
    return out


@pytest.mark.parametrize(
    ("name", "limit", "cut_as_is"),
    [("self-instruct-summary.wav", 200_000, True), ("self-instruct-summary.mp3", 60_000, False)],
)
def test_audio_over_the_upload_limit_is_sent_in_pieces(
    name: str,
    limit: int,
    cut_as_is: bool,
    wire_server: WireServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The API takes at most 25 MiB per upload; a limit under the file's size stands in for it.
    audio = api_audio(name, tmp_path, monkeypatch, wire_server)
    monkeypatch.setenv("INSTRUCTGEN_TRANSCRIPTION_MAX_BYTES", str(limit))
    wire_server.transcription_numbered = True
    out = AudioExtractor().extract(audio)
    bodies = wire_server.transcriptions
    assert audio.stat().st_size > limit
    assert len(bodies) >= 2 and all(len(b) <= limit for b in bodies)
    assert out.text == " ".join(f"piece {n}." for n in range(1, len(bodies) + 1))
    assert out.metadata["pieces"] == len(bodies)
    wavs = uploaded_wavs(bodies)
    if cut_as_is:  # the WAV's own samples, cut where they are (22.05 kHz mono as recorded)
        assert {(c, r) for c, r, _ in wavs} == {(1, 22050)}
    else:  # decoded to what Whisper listens to
        assert {(c, r) for c, r, _ in wavs} == {(1, 16000)}
    assert sum(s for *_, s in wavs) == pytest.approx(13.5, abs=0.3)  # nothing lost


def test_a_file_under_the_limit_is_sent_whole(
    wire_server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audio = api_audio("self-instruct-summary.ogg", tmp_path, monkeypatch, wire_server)
    out = AudioExtractor().extract(audio)
    assert len(wire_server.transcriptions) == 1 and "pieces" not in out.metadata
    assert audio.read_bytes() in wire_server.transcriptions[0]


def test_without_a_decoder_a_large_compressed_file_says_what_to_install(
    wire_server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    audio = api_audio("self-instruct-summary.mp3", tmp_path, monkeypatch, wire_server, key=None)
    monkeypatch.setenv("INSTRUCTGEN_TRANSCRIPTION_MAX_BYTES", "60000")
    monkeypatch.setitem(sys.modules, "av", None)  # PyAV not installed
    with pytest.raises(ExtractionError) as info:
        AudioExtractor().extract(audio)
    assert info.value.reason.startswith("over the transcription API's 0.0572 MiB upload limit")
    assert "pip install 'instructgen[audio]'" in info.value.reason
    assert wire_server.transcriptions == []  # nothing sent that the API would refuse

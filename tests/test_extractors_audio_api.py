"""Audio through the OpenAI transcription API when a key or base URL is configured."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import SHARED, TEST_KEY
from instructgen_audio import AudioExtractor
from wire_server import WireServer

from instructgen import ExtractionError


def test_transcription_api_is_used_when_configured(
    wire_server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audio = tmp_path / "talk.mp3"
    shutil.copy(SHARED / "corpus" / "audio" / "self-instruct-summary.mp3", audio)
    monkeypatch.setenv("OPENAI_BASE_URL", wire_server.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    out = AudioExtractor().extract(audio)
    assert out.text == wire_server.transcription_text
    assert out.metadata["transcriber"] == "openai whisper-1"
    body = wire_server.transcriptions[0]
    assert b'name="model"' in body and b"whisper-1" in body
    assert audio.read_bytes()[:1000] in body  # the file itself was uploaded


def test_transcription_api_errors_are_a_skip_reason(
    wire_server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audio = tmp_path / "talk.wav"
    shutil.copy(SHARED / "corpus" / "audio" / "self-instruct-summary.wav", audio)
    monkeypatch.setenv("OPENAI_BASE_URL", wire_server.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "wrong")
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

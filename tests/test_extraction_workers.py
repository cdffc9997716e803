"""Extraction worker processes started from a process that has run CTranslate2: forking it
would copy a model whose threads are gone (the child waits forever), so such a process starts
its workers through a fork server, with its environment and in-process plugins."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import SHARED

SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path

    from instructgen import Extracted, Extractor, hookimpl, register_plugin
    sys.path.insert(0, {tests!r})
    from folder_reading import read_folder
    from instructgen.documents.workers import _start_method


    class Shout(Extractor):
        name = "shout"
        extensions = ("shout",)

        def extract(self, path):
            return Extracted(path.read_text().upper())


    class ShoutPlugin:
        @hookimpl
        def register_extractors(self, registry):
            registry.add(Shout)


    def main():
        d = Path(sys.argv[1])
        before = _start_method()
        if sys.argv[2] == "transcribe-first":
            from instructgen_audio import AudioExtractor

            AudioExtractor().extract(d / "self-instruct-summary.ogg")  # loads CTranslate2
        register_plugin(ShoutPlugin(), name="shout-plugin")
        os.environ["INSTRUCTGEN_TEST_MARK"] = "set after start"
        start = time.monotonic()
        files = read_folder(d, workers=2).files
        print(json.dumps({
            "before": before,
            "method": _start_method(),
            "seconds": time.monotonic() - start,
            "files": {f.rel: [f.extractor, f.skip, (f.text or "")[:60]] for f in files},
        }))


    if __name__ == "__main__":
        main()
    """
)


def run(tmp_path: Path, mode: str) -> dict[str, object]:
    import json

    d = tmp_path / "d"
    d.mkdir(exist_ok=True)
    for name in ("self-instruct-summary.ogg", "self-instruct-summary.wav"):
        shutil.copy(SHARED / "corpus" / "audio" / name, d)
    (d / "note.shout").write_text("quiet words")
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.replace("{tests!r}", repr(str(Path(__file__).parent))))
    env = {**os.environ, "INSTRUCTGEN_TRANSCRIBER": "local"}
    r = subprocess.run(
        [sys.executable, str(script), str(d), mode],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


def test_workers_after_in_process_transcription_finish(tmp_path: Path) -> None:
    out = run(tmp_path, "transcribe-first")
    assert out["before"] == "fork" and out["method"] == "forkserver"
    files = out["files"]
    assert isinstance(files, dict)
    for name in ("self-instruct-summary.ogg", "self-instruct-summary.wav"):
        extractor, skip, text = files[name]
        assert extractor == "audio"
        assert skip is None and "language model" in text.lower(), files[name]
    assert files["note.shout"] == ["shout", None, "QUIET WORDS"]  # in-process plugin came along
    assert float(out["seconds"]) < 120  # forked workers used to hang until the timeout (300 s)


def test_a_single_threaded_caller_still_forks(tmp_path: Path) -> None:
    out = run(tmp_path, "scan-only")
    assert out["before"] == "fork"
    files = out["files"]
    assert isinstance(files, dict)
    assert files["note.shout"] == ["shout", None, "QUIET WORDS"]


def test_the_start_method_can_be_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    from instructgen.documents.workers import _start_method

    for method in ("fork", "forkserver", "spawn"):
        monkeypatch.setenv("INSTRUCTGEN_WORKER_START", method)
        assert _start_method() == method

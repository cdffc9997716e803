"""The progress display: a live line on a terminal, plain throttled lines otherwise."""

from __future__ import annotations

import io

from instructgen.cli._run import ProgressRenderer
from instructgen.progress import ProgressEvent


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    r = ProgressRenderer(stream=out)
    r(ProgressEvent("bootstrap", done=1, total=10))
    r(ProgressEvent("bootstrap", done=2, total=10))  # within a second: not repeated
    r(
        ProgressEvent(
            "requests",
            done=5,
            total=20,
            failed=1,
            retried=2,
            cached=3,
            prompt_tokens=1000,
            completion_tokens=234,
            cost=0.0123,
            eta_s=75,
        )
    )
    r.close()
    lines = out.getvalue().splitlines()
    assert lines == [
        "bootstrap: 1/10",
        "requests: 5/20 | 3 cached | 1 failed | 2 retried | 1,234 tokens | $0.0123 | ETA 1m15s",
    ]


def test_live_line_on_a_terminal() -> None:
    out = FakeTTY()
    r = ProgressRenderer(stream=out)
    r(ProgressEvent("instances", done=1, total=3))
    r(ProgressEvent("instances", done=2, total=3))
    r.close()
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert "instances: 2/3" in text


def test_disabled_prints_nothing() -> None:
    out = io.StringIO()
    r = ProgressRenderer(enabled=False, stream=out)
    r(ProgressEvent("x", done=1))
    r.close()
    assert out.getvalue() == ""

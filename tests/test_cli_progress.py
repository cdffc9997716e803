"""The progress display: one live line on a terminal, plain periodic lines covering every stage
otherwise, never a carriage return off a terminal."""

from __future__ import annotations

import io
import os

import pytest

from instructgen.cli import _run
from instructgen.cli._run import ProgressRenderer
from instructgen.progress import ProgressEvent, emit


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_cover_every_stage_and_end_with_the_final_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr(_run.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    r = ProgressRenderer(stream=out, log_every=5)
    clock[0] += 5
    r(ProgressEvent("bootstrap", done=1, total=10))  # one period in: written
    r(ProgressEvent("bootstrap", done=10, total=10))  # within the next period: not yet
    r(ProgressEvent("classify", done=3, total=10))
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
    text = out.getvalue()
    assert "\r" not in text
    assert text.splitlines() == [
        "bootstrap: 1/10",
        "bootstrap: 10/10 · classify: 3/10 | 5 requests (3 cached, 1 failed, 2 retried) "
        "| 1,234 tokens | $0.012 | ETA 1m15s",
    ]


def test_plain_lines_every_period(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(_run.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    r = ProgressRenderer(stream=out, log_every=5)
    for i in range(1, 31):  # one event a second for 30 s
        clock[0] += 1
        r(ProgressEvent("instances", done=i, total=30))
    r.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "instances: 5/30" and lines[-1] == "instances: 30/30"
    assert len(lines) == 6  # every 5 s, not one per event and not only the first


def test_a_short_run_writes_no_line_off_a_terminal() -> None:
    out = io.StringIO()
    r = ProgressRenderer(stream=out, log_every=5)
    r(ProgressEvent("extract", done=1, total=4, message="solar-panels.md"))
    r(ProgressEvent("extract", done=4, total=4))
    r.close()
    assert out.getvalue() == ""


def test_the_requests_total_is_not_shown_while_it_grows() -> None:
    out = io.StringIO()
    r = ProgressRenderer(stream=out, log_every=0)
    r._last = float("-inf")
    r(ProgressEvent("requests", done=36, total=235))
    r(ProgressEvent("requests", done=242, total=435))
    r.close()
    assert out.getvalue().splitlines() == ["36 requests", "242 requests"]


def test_live_line_on_a_terminal() -> None:
    out = FakeTTY()
    r = ProgressRenderer(stream=out)
    r.REDRAW_EVERY = 0
    r(ProgressEvent("instances", done=1, total=3))
    r(ProgressEvent("instances", done=2, total=3))
    r.close()
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert "instances: 2/3" in text


def test_a_terminal_reporting_zero_columns_keeps_the_whole_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_run.shutil, "get_terminal_size", lambda fallback: os.terminal_size((0, 0)))
    out = FakeTTY()
    r = ProgressRenderer(stream=out)
    r(ProgressEvent("bootstrap", done=5, total=40))
    r.close()
    assert "bootstrap: 5/40" in out.getvalue()


def test_disabled_prints_nothing() -> None:
    out = io.StringIO()
    r = ProgressRenderer(enabled=False, stream=out)
    r(ProgressEvent("x", done=1))
    r.close()
    assert out.getvalue() == ""


def test_a_callback_that_raises_is_detached_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    calls = []

    def broken(ev: ProgressEvent) -> None:
        calls.append(ev)
        raise ValueError("observer bug")

    with caplog.at_level("WARNING", logger="instructgen"):
        for i in range(3):
            emit(broken, ProgressEvent("bootstrap", done=i))
    assert len(calls) == 1
    assert sum("detached" in r.getMessage() for r in caplog.records) == 1


def test_the_projected_total_cost_shows_after_the_first_requests() -> None:
    out = io.StringIO()
    r = ProgressRenderer(stream=out, log_every=0, expected_requests=100)
    r._last = float("-inf")
    r(ProgressEvent("requests", done=10, cost=0.01))  # too few answers to project from
    r(ProgressEvent("requests", done=25, cached=5, cost=0.02))  # 20 paid: $0.001 each
    r.close()
    lines = out.getvalue().splitlines()
    assert "projected" not in lines[0]
    assert lines[1].endswith("| $0.02 | projected $0.095")


def test_a_directory_run_projects_its_cost_once_every_file_is_read() -> None:
    out = io.StringIO()
    r = ProgressRenderer(stream=out, log_every=0)
    r._last = float("-inf")
    r(ProgressEvent("extract", done=3, total=4))
    r(ProgressEvent("requests", done=30, total=60, cost=0.03))  # files still being read
    r(ProgressEvent("extract", done=4, total=4))
    r(ProgressEvent("requests", done=40, total=80, cost=0.04))  # all 80 chunk requests known
    r.close()
    lines = out.getvalue().splitlines()
    assert lines[1] == "extract: 3/4 | 30 requests | $0.03"  # files still being read
    assert lines[-1] == "extract: 4/4 | 40 requests | $0.04 | projected $0.08"

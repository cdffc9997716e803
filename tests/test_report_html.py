"""`instructgen report`: one self-contained HTML file, rendered in headless Chromium."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SHARED
from selfinstruct_responder import respond
from wire_server import WireServer

from instructgen.cli import cli


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    tasks = tmp / "seed_tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    with WireServer() as server:
        server.responder = respond
        r = CliRunner(env={"OPENAI_API_KEY": "sk-test"}).invoke(
            cli,
            [
                "generate",
                str(tasks),
                "--engine",
                "openai",
                "--base-url",
                server.openai_base_url,
                "--out",
                str(tmp / "ds"),
                "-n",
                "30",
                "--num-instructions",
                "20",
            ],
        )
        assert r.exit_code == 0, r.stderr
    r = CliRunner().invoke(cli, ["report", str(tmp / "ds"), "--tasks", str(tasks)])
    assert r.exit_code == 0, r.stderr
    return tmp / "ds" / "report.html"


def test_report_is_self_contained(report_file: Path) -> None:
    page = report_file.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    for title in (
        "Instruction length",
        "Nearest-neighbour ROUGE-L (against the seed",
        "Most common leading words",
        "Drops per filter",
        "Tokens (cost",
    ):
        assert title in page
    assert page.count("<svg") >= 5
    assert "sk-test" not in page


def test_report_for_a_directory_run_shows_sources_and_skips(tmp_path: Path) -> None:
    from instructgen import InstructionDataset
    from instructgen.report import build_report

    rows = [
        {
            "instruction": f"What does file {i % 3} say?",
            "text": "",
            "target": "It says x.",
            "source": f"docs/f{i % 3}.pdf",
        }
        for i in range(9)
    ]
    ds = InstructionDataset(rows)
    page = build_report(ds.rows, {"skipped_files": [{"file": "a.pdf", "reason": "encrypted"}]})
    assert "Examples per source file" in page and "docs/f1.pdf" in page
    assert "encrypted" in page


def test_report_renders_in_headless_chromium(report_file: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("chromium and chromium-driver are not installed (make installs them)")
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1200,1600",
    ):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        driver.get(report_file.as_uri())
        assert "instructgen" in driver.title
        assert len(driver.find_elements("css selector", "svg")) >= 5
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
        png = driver.get_screenshot_as_png()
    finally:
        driver.quit()
    image = Image.open(io.BytesIO(png)).convert("RGB").resize((120, 160))
    colours = image.getcolors(maxcolors=120 * 160)
    assert colours is not None and len(colours) > 20  # not a blank page


def _ticks(page: str) -> list[str]:
    """The tick labels of the report's histograms (the cards with an axis)."""
    labels = []
    for svg in re.findall(r"<svg[^>]*>.*?</svg>", page, re.S):
        if "rotate(-90)" in svg:  # a histogram: its y-axis is labelled
            labels += re.findall(r'text-anchor="(?:middle|end)">([^<]*)</text>', svg)
    return [label for label in labels if not re.search(r"[a-zA-Z]", label)]


def test_a_resumed_run_reports_this_time_and_the_whole_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run, then rerun the same command (everything from the cache): run.json, metadata.json,
    the summary line and the report show the rerun's own figures and the run's totals; the
    report's counts are run.json's, as the summary line's are."""
    import json

    from instructgen.money import format_usd

    tasks = tmp_path / "seed_tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    out = tmp_path / "ds"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with WireServer() as server:
        server.responder = respond
        args = ["generate", str(tasks), "--engine", "openai", "--base-url"]
        args += [server.openai_base_url, "--out", str(out), "-n", "30", "--num-instructions", "40"]
        first = CliRunner().invoke(cli, args)
        assert first.exit_code == 0, first.stderr
        paid = len(server.calls)
        run1 = json.loads((out / "run.json").read_text())
        again = CliRunner().invoke(cli, args)
        assert again.exit_code == 0, again.stderr
        assert len(server.calls) == paid  # the rerun paid for nothing
    run2 = json.loads((out / "run.json").read_text())
    cost = run1["requests"]["cost_usd"]
    tokens = run1["requests"]["prompt_tokens"] + run1["requests"]["completion_tokens"]
    assert cost > 0 and run1["totals"]["invocations"] == 1
    assert run1["totals"]["requests_paid"] == paid == run1["requests"]["requests_completed"]
    assert run2["requests"]["requests_sent"] == 0 and run2["requests"]["cost_usd"] == 0
    totals = run2["totals"]
    assert totals["invocations"] == 2 and totals["requests_paid"] == paid
    assert totals["cost_usd"] == pytest.approx(cost)
    assert totals["prompt_tokens"] + totals["completion_tokens"] == tokens
    assert totals["elapsed_s"] >= run1["totals"]["elapsed_s"]
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["run_report"]["totals"] == totals
    assert "0 tokens, $0.00 this time; " in again.stdout
    assert f"{format_usd(cost)} in all over 2 runs: {paid:,} requests paid" in again.stdout
    assert f"{tokens:,} tokens" in again.stdout

    r = CliRunner().invoke(cli, ["report", str(out), "--tasks", str(tasks)])
    assert r.exit_code == 0, r.stderr
    page = (out / "report.html").read_text()
    text = re.sub(r"<[^>]+>", " ", page)
    text = re.sub(r"\s+", " ", text)
    assert f"{run2['instructions_generated']} instructions generated" in text
    assert f"{run2['classification_instructions']} classification instructions" in text
    assert f"{format_usd(cost)} cost in all {format_usd(0)} this time" in text
    assert f"{tokens:,} tokens in all 0 this time" in text
    assert f"{paid:,} requests paid in all 0 this time, over 2 runs" in text
    assert "max " not in text
    assert "words per instruction" in text and "highest ROUGE-L F" in text
    ticks = _ticks(page)
    assert len(ticks) >= 10
    for tick in ticks:  # round numbers in the data's unit: 0, 5, 10 words; 0.2 ROUGE-L
        assert re.fullmatch(r"\d{1,3}(,\d{3})*|0\.[2468]|1", tick), ticks


@pytest.mark.parametrize(
    ("lengths", "want"),
    [
        ([3, 7, 21, 12, 12], ["0", "5", "10", "15", "20"]),
        ([40, 62, 88, 120, 9], ["0", "20", "40", "60", "80", "100", "120"]),
        ([1, 2, 2, 3], ["0", "1", "2", "3"]),
    ],
)
def test_length_ticks_are_whole_words(lengths: list[int], want: list[str]) -> None:
    from instructgen.report import build_report

    rows = [
        {"instruction": " ".join([f"word{i}"] * n), "text": "", "target": "x"}
        for i, n in enumerate(lengths)
    ]
    page = build_report(rows, {})
    svg = re.search(r"<svg[^>]*Instruction length.*?</svg>", page, re.S)
    assert svg is not None
    x_ticks = re.findall(r'text-anchor="middle">([^<]*)</text>', svg.group(0))
    assert x_ticks[: len(want)] == want and x_ticks[len(want)] == "words per instruction"


def test_an_invocation_stopped_by_its_budget_counts_in_the_totals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run stopped by --max-cost (exit 1) writes no report, but what it paid is added to
    run.json's totals, so the rerun that finishes it shows the whole run's cost."""
    import json

    tasks = tmp_path / "seed_tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    out = tmp_path / "ds"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with WireServer() as server:
        server.responder = respond
        args = ["generate", str(tasks), "--engine", "openai", "--base-url"]
        args += [server.openai_base_url, "--out", str(out), "-n", "30", "--num-instructions", "40"]
        stopped = CliRunner().invoke(cli, [*args, "--max-cost", "0.002", "--concurrency", "2"])
        assert stopped.exit_code == 1, stopped.output
        first = len(server.calls)
        assert first > 0
        partial = json.loads((out / "run.json").read_text())
        assert partial["unfinished_invocations"] == 1
        assert partial["totals"]["invocations"] == 1
        assert 0 < partial["totals"]["requests_paid"] <= first
        done = CliRunner().invoke(cli, args)
        assert done.exit_code == 0, done.output
        paid = len(server.calls)
    run = json.loads((out / "run.json").read_text())
    totals = run["totals"]
    assert totals["invocations"] == 2
    assert run["requests"]["requests_completed"] < paid  # the rerun paid only for the rest
    # every answer the client received is counted once; the server may also have answered
    # the (at most --concurrency 2) requests the stopped run gave up while they were in flight
    assert paid - 2 <= totals["requests_paid"] <= paid
    assert totals["cost_usd"] > run["requests"]["cost_usd"]
    assert "in all over 2 runs" in done.stdout

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

"""`instructgen --help` and `instructgen plugins` import no SDK, no unstructured, no datasets."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = (
    "openai",
    "cohere",
    "ai21",
    "unstructured",
    "datasets",
    "pyarrow",
    "faster_whisper",
    "pypdfium2",
    "ray",
)

CODE = """
import json, sys
from instructgen.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
heavy = {heavy!r}
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)), file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["--help"], ["plugins"], ["plugins", "--json"], ["--version"]])
def test_cli_does_not_import_heavy_modules(argv: list[str]) -> None:
    r = subprocess.run(
        [sys.executable, "-c", CODE.format(argv=argv, heavy=HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    imported = json.loads(r.stderr.strip().splitlines()[-1])
    assert imported == [], f"{argv} imported {imported}"


def test_import_instructgen_is_light() -> None:
    code = (
        "import sys, instructgen; from instructgen.engines import Engine; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]", r.stderr

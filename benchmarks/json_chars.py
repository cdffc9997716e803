"""Characters the text reader gives for JSON files, against the readable text in them.

    python benchmarks/json_chars.py [CORPUS]

For each corpus .json file, and for the element JSON that ``unstructured`` writes for two
corpus web pages (``elements_to_json``: per element an id, a type, the text and metadata),
prints the file's size, the characters read, and for the element files the sum
of their ``text`` values (the readable text). JSON on stdout.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def main(argv: list[str]) -> None:
    corpus = Path(argv[0]) if argv else DEFAULT_CORPUS
    from instructgen_text import TextExtractor
    from instructgen_unstructured.offline import ensure_offline

    ensure_offline()
    from unstructured.partition.html import partition_html
    from unstructured.staging.base import elements_to_json

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files: list[tuple[Path, int | None]] = []
        for src in sorted(corpus.glob("*.json")):
            files.append((Path(shutil.copy(src, tmp)), None))
        for page in ("example-10k-1p.html", "ideas-page.html"):
            data = elements_to_json(partition_html(filename=str(corpus / page)))
            target = Path(tmp) / f"{page}.elements.json"
            target.write_text(data, encoding="utf-8")
            files.append((target, sum(len(e.get("text", "")) for e in json.loads(data))))
        for path, readable in files:
            out = TextExtractor().extract(path)
            rows.append(
                {
                    "file": path.name,
                    "file_chars": len(path.read_text(encoding="utf-8")),
                    "read_chars": len(out.text),
                    "readable_chars": readable,
                }
            )
    json.dump({"files": rows}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main(sys.argv[1:])

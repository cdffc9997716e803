"""Every corpus file through the extractor plugins: extractor, characters, or the skip reason.

    python benchmarks/corpus_table.py [CORPUS] [--markdown]

Prints JSON (one object per file, plus totals); ``--markdown`` prints the table pasted into
docs/formats.md. The corpus is copied to a temporary directory first (it is read-only data).
Extraction runs with no cache, in 2 worker processes, offline (the OpenAI transcription API is
switched off so audio goes through the local Whisper model).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def main(argv: list[str]) -> None:
    args = [a for a in argv if not a.startswith("--")]
    corpus = Path(args[0]) if args else DEFAULT_CORPUS
    os.environ["INSTRUCTGEN_TRANSCRIBER"] = "local"
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from folder_reading import read_folder  # the streamed reader, collected

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "corpus"
        shutil.copytree(corpus, copy, ignore=shutil.ignore_patterns("NOTICE.md"))
        start = time.monotonic()
        result = read_folder(copy, workers=2)
        seconds = time.monotonic() - start
    rows = [
        {
            "file": f.rel,
            "extractor": f.extractor,
            "chars": f.chars,
            "skip": f.skip,
            "seconds": round(f.seconds, 3),
        }
        for f in sorted(result.files, key=lambda f: f.rel)
    ]
    if "--markdown" in argv:
        print("| file | extractor | chars | outcome |")
        print("|---|---|---:|---|")
        for r in rows:
            outcome = f"skipped: {r['skip']}" if r["skip"] else "text"
            print(f"| `{r['file']}` | {r['extractor'] or '-'} | {r['chars']} | {outcome} |")
        with_text = sum(1 for r in rows if not r["skip"])
        print(f"\n{len(rows)} files: {with_text} with text, {len(rows) - with_text} skipped.")
        return
    print(
        json.dumps(
            {
                "files": len(rows),
                "with_text": sum(1 for r in rows if not r["skip"]),
                "skipped": sum(1 for r in rows if r["skip"]),
                "seconds": round(seconds, 2),
                "rows": rows,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])

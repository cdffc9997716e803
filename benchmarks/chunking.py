"""Chunking a single-line text of 10, 40 and 80 MB (the shape of a minified JSON or a log
without newlines): the current ``chunk_text`` and, with ``--before``, the cutting loop it
replaced (which copied the rest of the line after every cut, so its time grew with the square
of the length). Also times a directory run's extraction of such a file end to end
(``--scan``: discovery, the worker, chunking in the worker). Prints JSON.

    python benchmarks/chunking.py [--sizes 10 40 80] [--before] [--scan]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from instructgen.documents import chunking
from instructgen.documents.chunking import chunk_text

_SENTENCES = re.compile(r"(?<=[.!?。！？])\s+")


def _pieces_before(text: str, size: int) -> list[str]:
    """The cutting loop as it was: ``sent = sent[cut:]`` after each cut."""
    out: list[str] = []
    for para in chunking._PARAGRAPHS.split(text):
        para = para.strip()
        if not para:
            continue
        if len(para) <= size:
            out.append(para)
            continue
        for sent in _SENTENCES.split(para):
            while len(sent) > size:
                cut = sent.rfind(" ", 0, size)
                cut = cut if cut > size // 2 else size
                out.append(sent[:cut].strip())
                sent = sent[cut:]
            if sent.strip():
                out.append(sent.strip())
    return out


def line(megabytes: int) -> str:
    return "word " * (megabytes * 1024 * 1024 // 5)


def timed(text: str) -> tuple[float, list[str]]:
    start = time.perf_counter()
    chunks = chunk_text(text, 8000)
    return round(time.perf_counter() - start, 3), chunks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 40, 80])
    parser.add_argument("--before", action="store_true", help="also time the old loop")
    parser.add_argument("--scan", action="store_true", help="also time scan() of a file")
    args = parser.parse_args()
    results = []
    for mb in args.sizes:
        text = line(mb)
        seconds, chunks = timed(text)
        row: dict[str, object] = {"megabytes": mb, "chunks": len(chunks), "after_s": seconds}
        if args.before:
            current = chunking._pieces
            chunking._pieces = _pieces_before  # type: ignore[assignment]
            try:
                before_s, before = timed(text)
            finally:
                chunking._pieces = current  # type: ignore[assignment]
            row["before_s"] = before_s
            row["same_chunks"] = before == chunks
        if args.scan:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from folder_reading import read_folder  # the streamed reader, collected

            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "line.txt").write_text(text, encoding="utf-8")
                start = time.perf_counter()
                result = read_folder(tmp, workers=1, timeout=120)
                row["scan_s"] = round(time.perf_counter() - start, 3)
                row["scan_chunks"] = len(result.chunks)
        results.append(row)
        print(json.dumps(row), file=sys.stderr)
    print(json.dumps({"python": sys.version.split()[0], "results": results}, indent=2))


if __name__ == "__main__":
    main()

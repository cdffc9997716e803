"""Question/answer pairs from a directory against a server answering in mixed chat styles.

    python benchmarks/qa_replies.py [--corpus ../shared/corpus] [--samples 5]
                                    [--old-parser OLD_QA_PY]

Copies the corpus into a temporary folder and runs from-dir (openai engine, real SDK) against
the tests' wire-format server, which answers each Q/A prompt in one of the styles real models
use, chosen per prompt: the asked format (40 %), a preamble line, bold labels, numbered
Question/Answer, a fenced JSON list (12 % each), one pair short (8 %), nothing parseable (4 %).
Three server setups, each a fresh run:

- ``text``: prompts ask for ``Q1:/A1:`` (the engine's JSON mode switched off), as before;
- ``json``: the server accepts ``response_format`` and the prompts ask for JSON;
- ``refused``: the server refuses ``response_format`` (HTTP 400), as many local servers do:
  the engine falls back to plain requests.

Prints JSON per setup: chunks, pairs expected (chunks x samples) and obtained, requests,
follow-ups, unparsed replies, chunks short. ``--old-parser`` (a previous qa.py) re-reads the
first reply of every chunk of the ``text`` setup with that parser, for comparison.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from wire_server import WireServer, qa_responder

from instructgen import InstructionDataset
from instructgen.engines import create_engine


def _old_parser(path: str | None) -> Any:
    if not path:
        return None
    spec = importlib.util.spec_from_file_location("old_qa", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parse_qa


def run(setup: str, docs: Path, out: Path, a: argparse.Namespace) -> dict[str, Any]:
    with WireServer() as server:
        server.responder = qa_responder("mixed")
        if setup == "refused":
            server.reject_response_formats = {"json_schema", "json_object"}
        engine = create_engine("openai", api_key="bench", base_url=server.openai_base_url)
        if setup == "text":
            setattr(engine, "structured_output", None)  # noqa: B010 - an instance override
        start = time.perf_counter()
        ds = InstructionDataset.generate_dataset_from_dir(
            docs, engine, chunk_size=a.chunk_size, num_samples_per_chunk=a.samples, out=out
        )
        seconds = time.perf_counter() - start
        report = ds.run_report
        replies = report["question_answer_replies"]
        chunks = report["extraction"]["chunks"]
        result: dict[str, Any] = {
            "documents_read": report["extraction"]["read"],
            "chunks": chunks,
            "pairs_expected": chunks * a.samples,
            "pairs": len(ds),
            "share": round(len(ds) / max(1, chunks * a.samples), 4),
            "requests_to_server": len(server.calls),
            "follow_up_requests": replies["follow_up_requests"],
            "unparsed_replies": replies["unparsed_replies"],
            "short_chunks": len(replies["short_chunks"]),
            "short_chunk_examples": replies["short_chunks"][:3],
            "failed_chunks": len(report["failed_chunks"]),
            "seconds": round(seconds, 1),
        }
        old_parse = _old_parser(a.old_parser)
        if old_parse is not None and setup == "text":
            firsts = [c for c in server.calls if "(Attempt " not in c.prompt]
            kept = sum(min(a.samples, len(old_parse(server.responder(c)))) for c in firsts)
            result["old_parser_pairs_from_first_replies"] = kept
            result["old_parser_share"] = round(kept / max(1, chunks * a.samples), 4)
        return result


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--corpus", default=str(Path(__file__).resolve().parents[2] / "shared/corpus"))
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--chunk-size", type=int, default=8000)
    p.add_argument("--setups", default="text,json,refused")
    p.add_argument("--old-parser", default=None, help="a previous qa.py to compare with")
    a = p.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "corpus"
        shutil.copytree(a.corpus, docs)
        extract_cache = None
        for setup in a.setups.split(","):
            out = Path(tmp) / f"out-{setup}"
            out.mkdir()
            if extract_cache is not None:  # read the corpus once
                shutil.copy(extract_cache, out / extract_cache.name)
            results[setup] = run(setup, docs, out, a)
            extract_cache = out / "extract-cache.sqlite3"
    print(json.dumps({"samples_per_chunk": a.samples, **results}, indent=2))


if __name__ == "__main__":
    main()

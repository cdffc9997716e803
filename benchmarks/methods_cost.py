"""Requests and dollars per 1,000 kept examples, per generation method, against a local
OpenAI-compatible server answering with the benchmarks' plausible replies
(``_selfinstruct_replies``: Self-Instruct's lists and instances; Alpaca's 15-16 blocks a reply,
some of them items Alpaca's filters drop). Tokens are billed as the tests' wire server counts
them (the model's tokenizer when tiktoken has it, else words); dollars at gpt-4o-mini's price
in the openai plugin's table.

    python benchmarks/methods_cost.py [--examples 1000] [--instructions-per-example 0.5]

Self-Instruct is run with ``num_instructions = examples x 0.5`` (about two instances kept
per instruction, as the paper's data has 1.6) and Alpaca with nothing but ``-n``. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import _selfinstruct_replies  # noqa: E402
from wire_server import WireCall, WireServer  # noqa: E402

import instructgen  # noqa: E402
from instructgen import InstructionDataset  # noqa: E402

SEEDS = HERE.parent.parent / "shared" / "data" / "seed_tasks.jsonl"


def respond(call: WireCall) -> str:
    return _selfinstruct_replies.reply(call.prompt, call.kind == "chat")


def measure(method: str, examples: int, per_example: float, tmp: Path) -> dict[str, object]:
    seeds = tmp / "seed_tasks.jsonl"
    shutil.copy(SEEDS, seeds)
    with WireServer() as server:
        server.responder = respond
        engine = instructgen.engine("openai", api_key="bench", base_url=server.openai_base_url)
        started = time.monotonic()
        ds = InstructionDataset.generate_dataset(
            seeds,
            engine,
            examples,
            max(1, round(examples * per_example)) if method == "self-instruct" else 10,
            cache=False,
            method=method,
            config=instructgen.DispatchConfig(concurrency=32),
        )
        seconds = time.monotonic() - started
    req = ds.run_report["requests"]
    kept = len(ds)
    sent = req["requests_completed"]
    return {
        "examples": kept,
        "requests": sent,
        "requests_per_1000_examples": round(sent / kept * 1000, 1),
        "prompt_tokens": req["prompt_tokens"],
        "completion_tokens": req["completion_tokens"],
        "cost_usd": round(req["cost_usd"], 4),
        "usd_per_1000_examples": round(req["cost_usd"] / kept * 1000, 4),
        "filter_drops": ds.run_report.get("filter_drops"),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--examples", type=int, default=1000)
    p.add_argument("--instructions-per-example", type=float, default=0.5)
    p.add_argument("--methods", default="self-instruct,alpaca")
    a = p.parse_args()
    out = {"model": "gpt-4o-mini (openai engine's default)", "examples": a.examples}
    with tempfile.TemporaryDirectory() as tmp:
        for method in a.methods.split(","):
            out[method] = measure(method, a.examples, a.instructions_per_example, Path(tmp))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

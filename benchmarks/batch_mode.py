"""The same `generate` run online and with --batch, against the tests' wire-format servers.

    python benchmarks/batch_mode.py [-n 50] [--num-instructions 50]

Runs `instructgen generate` (the CLI, in this process) twice on the shared seed tasks with the
Self-Instruct responder: once against the online server, once with `--batch` against the batch
server (OpenAI's Batch API: files, batches, states). Prints JSON: the cost of each run at the
engine's price table (gpt-4o-mini; batch requests at its batch column, 50 %), their ratio, the
requests each sent online, the batches created and the examples written. The answers are the
same in both runs, so the ratio measures the pricing, not different replies.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from batch_server import BatchWireServer  # noqa: E402
from selfinstruct_responder import respond  # noqa: E402
from wire_server import WireServer  # noqa: E402

SEED = ROOT.parents[1] / "shared" / "data" / "seed_tasks.jsonl"


def generate(url: str, out: Path, args: argparse.Namespace, *extra: str) -> tuple[dict, float]:
    from click.testing import CliRunner

    from instructgen.cli import cli

    seed = Path(args.tasks)
    start = time.perf_counter()
    r = CliRunner().invoke(
        cli,
        [
            "generate",
            str(seed),
            "--engine",
            "openai",
            "--base-url",
            url,
            "--out",
            str(out),
            "-n",
            str(args.n),
            "--num-instructions",
            str(args.num_instructions),
            "--json",
            *extra,
        ],
    )
    if r.exit_code != 0:
        raise SystemExit(f"generate failed ({r.exit_code}): {r.output[-2000:]}")
    report: dict[str, Any] = json.loads((out / "run.json").read_text())
    return report, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=50)
    p.add_argument("--num-instructions", type=int, default=50)
    p.add_argument("--tasks", default=str(SEED))
    a = p.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
    with tempfile.TemporaryDirectory() as tmp:
        with WireServer() as online_server:
            online_server.responder = respond
            online, online_s = generate(online_server.openai_base_url, Path(tmp) / "online", a)
            online_http = len(online_server.calls)
        with BatchWireServer() as batch_server:
            batch_server.responder = respond
            batched, batch_s = generate(
                batch_server.openai_base_url,
                Path(tmp) / "batch",
                a,
                "--batch",
                "--batch-poll",
                "0.05",
            )
            batches = batch_server.batches_created
            lines = sum(batch_server.batch_lines.values())
    on, ba = online["requests"], batched["requests"]
    print(
        json.dumps(
            {
                "command": f"generate -n {a.n} --num-instructions {a.num_instructions}",
                "online": {
                    "cost_usd": on["cost_usd"],
                    "requests_sent_online": on["requests_sent"],
                    "requests_answered": on["requests_completed"],
                    "http_requests_at_server": online_http,
                    "examples": online["examples"],
                    "elapsed_s": round(online_s, 2),
                },
                "batch": {
                    "cost_usd": ba["cost_usd"],
                    "batch_cost_usd": ba["batch"]["cost_usd"],
                    "requests_sent_online": ba["requests_sent"],
                    "requests_in_batches": lines,
                    "batches": batches,
                    "examples": batched["examples"],
                    "elapsed_s": round(batch_s, 2),
                },
                "cost_ratio": round(ba["cost_usd"] / on["cost_usd"], 4),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""evol-instruct: throughput at concurrency 64 against a 200 ms server, and requests, tokens and
dollars per 1,000 kept examples.

Throughput: benchmarks/_server.py (asyncio, its own process) answers every request after
exactly ``--latency`` seconds with Evol-Instruct replies (tests/evol_responder.py: evolved
prompts in real models' styles, verdicts, answers, with template copies, "Equal" verdicts,
refusals and stop-word answers so the elimination step works); the run goes through the core's
``run_method`` with the per-request cache on, as ``generate --method evol-instruct`` does.
The bound is concurrency / latency (320/s); the rate is the server's: requests answered over
the span from the first arrival to the last answer.

Cost: the same method against the tests' threaded wire server billing tokens as OpenAI does
(tiktoken's o200k_base), priced as gpt-4o-mini. The stand-in's answers are short (about 50
tokens), so the dollars are also given with answers of ``--answer-tokens`` (400, a typical
answer to an evolved instruction) in place of the measured answer tokens.

    python benchmarks/evol_instruct.py [--n 2000] [--seeds 1000] [--rounds 3] [--latency 0.2]
        [--concurrency 64] [--repeat 3] [--cost-n 300] [--window W]

The throughput runs evolve ``--seeds`` synthetic instructions (a pool large enough that the
start and the exact-count end are a small part of the run; 0: the 175 seed tasks); the cost
run evolves the 175 seed tasks of ../shared/data into ``--cost-n`` rows.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SEED = ROOT.parent / "shared" / "data" / "seed_tasks.jsonl"
sys.path.insert(0, str(ROOT / "tests"))

import instructgen_evol  # noqa: E402
from evol_responder import respond  # noqa: E402
from wire_server import WireServer, openai_tokenizer  # noqa: E402

import instructgen  # noqa: E402
from instructgen import RunSize  # noqa: E402
from instructgen import plugins as pm  # noqa: E402
from instructgen.dispatch import DispatchConfig  # noqa: E402
from instructgen.runs import run_method  # noqa: E402


def registered() -> None:
    """The plugin as its entry point registers it (in-process when the installed metadata
    predates the entry point)."""
    if "evol-instruct" not in pm.methods():
        instructgen.register_plugin(instructgen_evol, name="evol")


def synthetic_seeds(count: int, folder: Path) -> Path:
    """``count`` distinct instructions (the Self-Instruct stand-in's vocabulary) as a JSONL file
    of instructions: a pool large enough that a run lasts long past its start and its end."""
    import random

    from selfinstruct_responder import _instruction

    rng = random.Random(0)
    seen: dict[str, None] = {}
    while len(seen) < count:
        seen.setdefault(_instruction(rng), None)
    path = folder / "instructions.jsonl"
    path.write_text("".join(json.dumps({"instruction": text}) + "\n" for text in seen))
    return path


def run(
    url: str,
    n: int,
    rounds: int,
    concurrency: int,
    cache: Path,
    seed: int = 7,
    source: Path = SEED,
    **options: Any,
) -> Any:
    engine = instructgen.engine("openai", api_key="bench", base_url=url)
    return asyncio.run(
        run_method(
            "evol-instruct",
            source,
            engine,
            size=RunSize(n=n, num_instructions=n, seed=seed),
            method_options={"rounds": rounds, **options},
            cache=cache,
            config=DispatchConfig(concurrency=concurrency),
        )
    )


def throughput(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_server.py"), str(args.latency), "--evol"],
        stderr=subprocess.DEVNULL,  # requests cancelled at the exact count end mid-sleep
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        port = int(proc.stdout.readline())
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            result = run(
                f"http://127.0.0.1:{port}/v1",
                args.n,
                args.rounds,
                args.concurrency,
                Path(tmp) / "cache.db",
                seed,
                synthetic_seeds(args.seeds, Path(tmp)) if args.seeds else SEED,
                **({"window": args.window} if args.window else {}),
            )
            wall = time.perf_counter() - started
    finally:
        proc.stdin.close()
        server = json.loads(proc.stdout.readline())
        proc.wait(timeout=30)
    bound = args.concurrency / args.latency
    return {
        "rows": len(result.rows),
        "requests": server["requests"],
        "by_kind": server["by_kind"],
        "server_span_s": server["span_s"],
        "per_second": server["per_second"],
        "share_of_bound": round(server["per_second"] / bound, 3),
        "max_in_flight": server["max_in_flight"],
        "mean_in_flight_each_second": server["mean_in_flight_each_second"],
        "wall_s": round(wall, 2),
        "eliminations": result.report["eliminations"],
    }


def cost(args: argparse.Namespace) -> dict[str, Any]:
    with WireServer() as server, tempfile.TemporaryDirectory() as tmp:
        server.responder = respond
        server.tokenizer = openai_tokenizer()
        engine = instructgen.engine("openai", api_key="x", base_url=server.openai_base_url)
        result = run(server.openai_base_url, args.cost_n, args.rounds, 16, Path(tmp) / "c.db")
        calls = list(server.requests)
        answer_tokens = answers = 0
        for call in calls:
            if "Prompt#:" not in call.prompt and "Equal or Not Equal" not in call.prompt:
                answers += 1
                answer_tokens += server.usage(call, [respond(call)])[1]
    stats = result.report["requests"]
    prompt, completion = stats["prompt_tokens"], stats["completion_tokens"]
    price = engine.price()
    assert price is not None
    typical = completion - answer_tokens + answers * args.answer_tokens
    kept = len(result.rows)
    per = 1000 / kept
    return {
        "kept": kept,
        "requests": len(calls),
        "requests_per_1000_kept": round(len(calls) * per, 1),
        "requests_by_role_per_1000_kept": {
            k: round(v * per, 1) for k, v in result.report["requests_by_role"].items()
        },
        "prompt_tokens_per_1000_kept": round(prompt * per),
        "completion_tokens_per_1000_kept": round(completion * per),
        "usd_per_1000_kept_as_measured": round(stats["cost_usd"] * per, 4),
        f"usd_per_1000_kept_with_{args.answer_tokens}_token_answers": round(
            price.cost(instructgen.Usage(prompt, typical)) * per, 4
        ),
        "eliminations": result.report["eliminations"],
        "model": result.report["model"],
        "price_per_million_tokens": {"input": price.input, "output": price.output},
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=2000)
    p.add_argument(
        "--seeds",
        type=int,
        default=1000,
        help="throughput: this many synthetic seed instructions (0: the 175 seed tasks)",
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--cost-n", type=int, default=300, help="0: no cost run")
    p.add_argument("--window", type=int, default=None, help="-m window (default: the method's)")
    p.add_argument("--answer-tokens", type=int, default=400)
    args = p.parse_args()
    registered()
    runs = [throughput(args, seed) for seed in range(7, 7 + args.repeat)]
    rates = [r["per_second"] for r in runs]
    out = {
        "load_average": os.getloadavg(),
        "throughput": {
            "concurrency": args.concurrency,
            "latency_s": args.latency,
            "bound_per_second": args.concurrency / args.latency,
            "median_per_second": statistics.median(rates),
            "median_share_of_bound": round(
                statistics.median(rates) * args.latency / args.concurrency, 3
            ),
            "runs": runs,
        },
        "cost": cost(args) if args.cost_n else None,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

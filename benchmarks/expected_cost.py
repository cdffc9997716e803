"""The dry run's expected cost against what the same run then costs.

For each size, ``generate --dry-run --json`` gives ``expected_cost_usd`` (and the upper bound
``max_cost_usd``); the same command is then run against the tests' wire server, and its
``run.json`` cost is compared.

The server answers as a model would (``--replies benchmark``: benchmarks/_selfinstruct_replies.py,
seven new instructions a bootstrap reply, one to three examples an instance reply; ``tests``:
tests/selfinstruct_responder.py, shorter replies from a small vocabulary whose near-duplicates
the ROUGE-L filter drops more and more as a run grows) and bills tokens as OpenAI does
(``--usage tokens``: tiktoken's o200k_base, from the vocabulary LiteLLM ships) or as
whitespace-separated words (``--usage words``, the tests' default).

    python benchmarks/expected_cost.py [--sizes 10:10,100:100,500:500,1000:2000]
        [--replies benchmark|tests] [--usage tokens|words] [--engine openai|openai-completions]

Prints one JSON object: per size, expected, bound and actual cost, and expected / actual.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SEED = ROOT.parent / "shared" / "data" / "seed_tasks.jsonl"
sys.path.insert(0, str(ROOT / "tests"))

sys.path.insert(0, str(HERE))

import _selfinstruct_replies  # noqa: E402
from selfinstruct_responder import respond  # noqa: E402
from wire_server import WireCall, WireServer, openai_tokenizer, qa_responder  # noqa: E402


def plausible(call: WireCall) -> str:
    return _selfinstruct_replies.reply(call.prompt, call.kind == "chat")


def generate(args: list[str], url: str | None, command: str = "generate") -> dict[str, Any]:
    cmd = [sys.executable, "-m", "instructgen", command, *args, "--json"]
    if url:
        cmd += ["--base-url", url]
    env = {**os.environ, "OPENAI_API_KEY": "bench"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr[-1500:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10:10,100:100,500:500,1000:2000")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--replies", choices=("benchmark", "tests"), default="benchmark")
    ap.add_argument("--usage", choices=("tokens", "words"), default="tokens")
    ap.add_argument("--engine", choices=("openai", "openai-completions"), default="openai")
    ap.add_argument(
        "--from-dir",
        metavar="DIR",
        help="compare `from-dir DIR --self-instruct`'s Self-Instruct estimate with its run "
        "(questions answered as JSON pairs; the Self-Instruct replies as --replies)",
    )
    a = ap.parse_args()
    model = {"openai": "gpt-4o-mini", "openai-completions": "gpt-3.5-turbo-instruct"}[a.engine]
    tokenizer = openai_tokenizer(model) if a.usage == "tokens" else None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tasks = Path(tmp) / "tasks.jsonl"
        tasks.write_bytes(SEED.read_bytes())
        for size in a.sizes.split(","):
            n, cap = size.split(":")
            source = [a.from_dir, "--self-instruct"] if a.from_dir else [str(tasks)]
            command = "from-dir" if a.from_dir else "generate"
            common = [*source, "--engine", a.engine, "-n", n, "--num-instructions", cap]
            dry = generate([*common, "--dry-run"], None, command)
            responder = plausible if a.replies == "benchmark" else respond
            with WireServer() as server:
                server.responder = qa_responder("json", responder) if a.from_dir else responder
                server.tokenizer = tokenizer
                out = Path(tmp) / f"out-{n}-{cap}"
                generate(
                    [*common, "--concurrency", str(a.concurrency), "--out", str(out)],
                    server.openai_base_url,
                    command,
                )
            run = json.loads((out / "run.json").read_text())
            req = run["requests"]
            if a.from_dir:  # the Self-Instruct stage's own estimate and requests
                dry, req = dry["self_instruct"], run["self_instruct"]["requests"]
            rows.append(
                {
                    "n": int(n),
                    "num_instructions": int(cap),
                    "expected_cost_usd": dry["expected_cost_usd"],
                    "max_cost_usd": dry["max_cost_usd"],
                    "actual_cost_usd": round(req["cost_usd"], 6),
                    "expected_over_actual": round(dry["expected_cost_usd"] / req["cost_usd"], 3),
                    "bound_over_actual": round(dry["max_cost_usd"] / req["cost_usd"], 3),
                    "expected_prompt_tokens": dry["expected_prompt_tokens"],
                    "actual_prompt_tokens": req["prompt_tokens"],
                    "expected_completion_tokens": dry["expected_completion_tokens"],
                    "actual_completion_tokens": req["completion_tokens"],
                    "prompt_tokens_counted": dry["prompt_tokens_counted"],
                    "expected_requests": dry["requests"]["total"],
                    "actual_requests": req["requests_completed"] + req["requests_cached"],
                }
            )
    out = {
        "model": model,
        "command": f"from-dir {a.from_dir} --self-instruct" if a.from_dir else "generate",
        "replies": a.replies,
        "usage": a.usage,
        "sizes": rows,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

"""Requests, tokens and dollars per 1,000 rows rated by the llm-judge filter, against a local
OpenAI-compatible server. The rows are Self-Instruct rows made by the same server from the
benchmarks' plausible replies (``_selfinstruct_replies``); the judge's replies are written as
AlpaGasus asked for them: the score alone on the first line, then an explanation of
``--explanation-words`` words (cut by the judge's 150-token reply limit when longer), in the
styles of ``tests/judge_responder.py`` (6 % of rows need a second request, 2 % never give a
score). Tokens are billed as the wire server counts them (tiktoken when installed, else words);
dollars at gpt-4o-mini's price in the openai plugin's table, and at the Batch API's half price.

    python benchmarks/judge_cost.py [--rows 1000] [--explanation-words 60]

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import _selfinstruct_replies  # noqa: E402
import judge_responder  # noqa: E402
from wire_server import WireCall, WireServer, openai_tokenizer  # noqa: E402

import instructgen  # noqa: E402
import instructgen.plugins as pm  # noqa: E402
from instructgen import InstructionDataset  # noqa: E402

SEEDS = HERE.parent.parent / "shared" / "data" / "seed_tasks.jsonl"
FILLER_TEXT = (
    "The response follows the instruction and uses the input correctly, the facts it states "
    "are right and the format matches what was asked, although one step could be explained "
    "more clearly and a detail of the input is not used"
)
FILLER = FILLER_TEXT.split()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--explanation-words", type=int, default=60)
    args = ap.parse_args()
    if "llm-judge" not in pm.filters():
        import instructgen_judge

        instructgen.register_plugin(instructgen_judge, name="judge")
    explanation = " ".join(FILLER[i % len(FILLER)] for i in range(args.explanation_words))

    def respond(call: WireCall) -> str:
        if judge_responder.is_judge(call):
            reply = judge_responder.judge_reply(call.prompt, call.kind)
            return reply + "\n" + explanation if any(c.isdigit() for c in reply) else reply
        return _selfinstruct_replies.reply(call.prompt, call.kind == "chat")

    tmp = Path(tempfile.mkdtemp(prefix="judge-bench-"))
    try:
        seeds = tmp / "seed_tasks.jsonl"
        shutil.copy(SEEDS, seeds)
        with WireServer() as server:
            server.responder = respond
            try:
                server.tokenizer = openai_tokenizer()
                billed = "tiktoken (gpt-4o-mini)"
            except Exception:  # tiktoken missing: words
                billed = "words"
            engine = instructgen.engine(
                "openai", api_key="bench", base_url=server.openai_base_url, model="gpt-4o-mini"
            )
            cfg = instructgen.DispatchConfig(concurrency=32)
            rows = InstructionDataset.generate_dataset(
                seeds, engine, args.rows, args.rows, cache=False, config=cfg
            )
            started = time.monotonic()
            judged = rows.judge(engine, threshold=4, cache=False, config=cfg)
            seconds = time.monotonic() - started
        j = judged.run_report["judge"]
        req = judged.run_report["requests"]
        per = 1000 / max(1, j["rows_judged"])
        price = engine.price()
        assert price is not None
        from instructgen.batching import batch_price

        half = batch_price(price)
        usage = instructgen.Usage(req["prompt_tokens"], req["completion_tokens"])
        print(
            json.dumps(
                {
                    "rows_judged": j["rows_judged"],
                    "rows_kept_at_4": j["rows_kept"],
                    "rows_unjudged": j["rows_unjudged"],
                    "rating_requests": j["rating_requests"],
                    "requests_per_1000_rows": round(j["rating_requests"] * per, 1),
                    "prompt_tokens_per_row": round(req["prompt_tokens"] / j["rows_judged"], 1),
                    "completion_tokens_per_row": round(
                        req["completion_tokens"] / j["rows_judged"], 1
                    ),
                    "usd_per_1000_rows": round(req["cost_usd"] * per, 4),
                    "usd_per_1000_rows_batch": round(half.cost(usage) * per, 4),
                    "billed": billed,
                    "explanation_words": args.explanation_words,
                    "seconds": round(seconds, 2),
                    "load_average": os.getloadavg()[0],
                },
                indent=1,
            )
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

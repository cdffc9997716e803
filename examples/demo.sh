#!/usr/bin/env bash
# The main job: a small dataset from examples/tasks.jsonl with the OpenAI engine when a key or an
# OpenAI-compatible server is configured; otherwise everything that needs no engine.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-demo-out}

if [ -n "${OPENAI_API_KEY:-}" ] || [ -n "${OPENAI_BASE_URL:-}" ]; then
  echo "== instructgen generate examples/tasks.jsonl --engine openai -n 5 --out $OUT/tasks"
  instructgen generate examples/tasks.jsonl --engine openai ${MODEL:+--model "$MODEL"} \
    -n 5 --num-instructions 10 --out "$OUT/tasks"
  echo "== instructgen from-dir examples/docs --engine openai --samples-per-chunk 2 --out $OUT/docs"
  instructgen from-dir examples/docs --engine openai ${MODEL:+--model "$MODEL"} \
    --samples-per-chunk 2 --out "$OUT/docs"
  echo "== datasets saved in $OUT/tasks and $OUT/docs (see run.json in each)"
else
  echo "No OPENAI_API_KEY or OPENAI_BASE_URL set: showing what needs no engine (dry run and extraction)."
  echo "== instructgen validate examples/tasks.jsonl"
  instructgen validate examples/tasks.jsonl
  echo "== instructgen generate examples/tasks.jsonl --engine openai -n 5 --dry-run"
  instructgen generate examples/tasks.jsonl --engine openai -n 5 --num-instructions 10 --dry-run
  echo "== instructgen extract examples/docs"
  instructgen extract examples/docs
fi

"""Built-in dataset output formats: jsonl, alpaca, sharegpt, openai (chat fine-tuning), parquet.

Every exporter writes to a temporary file beside the target and renames it into place, so an
interrupted export never leaves a half-written file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from instructgen import Exporter, ExporterRegistry, atomic_path, hookimpl, write_atomic

if TYPE_CHECKING:
    from instructgen import InstructionDataset

__all__ = [
    "AlpacaExporter",
    "JsonlExporter",
    "OpenAIExporter",
    "ParquetExporter",
    "ShareGPTExporter",
]


def _prompt(row: dict[str, Any]) -> str:
    return f"{row['instruction']}\n\n{row['text']}" if row["text"] else row["instruction"]


class JsonlExporter(Exporter):
    """One JSON object per line with every column (instruction, text, target, provenance)."""

    name = "jsonl"
    extension = "jsonl"
    description = "every column, one JSON object a line"

    def export(self, dataset: InstructionDataset, path: Path) -> Path:
        return write_atomic(path, (json.dumps(r, ensure_ascii=False) + "\n" for r in dataset))


class AlpacaExporter(Exporter):
    """A JSON list of {instruction, input, output}, as Stanford Alpaca's data."""

    name = "alpaca"
    extension = "json"
    description = "JSON list of {instruction, input, output}"

    def export(self, dataset: InstructionDataset, path: Path) -> Path:
        rows = [
            {"instruction": r["instruction"], "input": r["text"], "output": r["target"]}
            for r in dataset
        ]
        return write_atomic(path, [json.dumps(rows, ensure_ascii=False, indent=2) + "\n"])


class ShareGPTExporter(Exporter):
    """A JSON list of {conversations: [{from: human, value}, {from: gpt, value}]}."""

    name = "sharegpt"
    extension = "json"
    description = "JSON list of {conversations: [{from, value}, ...]}"

    def export(self, dataset: InstructionDataset, path: Path) -> Path:
        rows = [
            {
                "conversations": [
                    {"from": "human", "value": _prompt(r)},
                    {"from": "gpt", "value": r["target"]},
                ]
            }
            for r in dataset
        ]
        return write_atomic(path, [json.dumps(rows, ensure_ascii=False, indent=2) + "\n"])


class OpenAIExporter(Exporter):
    """OpenAI chat fine-tuning JSONL: {"messages": [{role: user}, {role: assistant}]} a line."""

    name = "openai"
    extension = "jsonl"
    description = "OpenAI chat fine-tuning JSONL"

    def export(self, dataset: InstructionDataset, path: Path) -> Path:
        return write_atomic(
            path,
            (
                json.dumps(
                    {
                        "messages": [
                            {"role": "user", "content": _prompt(r)},
                            {"role": "assistant", "content": r["target"]},
                        ]
                    },
                    ensure_ascii=False,
                )
                + "\n"
                for r in dataset
            ),
        )


class ParquetExporter(Exporter):
    """Apache Parquet with every column (through the ``datasets`` / Arrow schema)."""

    name = "parquet"
    extension = "parquet"
    description = "Apache Parquet, every column"

    def export(self, dataset: InstructionDataset, path: Path) -> Path:
        import pyarrow.parquet as pq

        with atomic_path(path) as tmp:
            # Arrow's writer directly: datasets' to_parquet draws a progress bar.
            pq.write_table(dataset.to_hf().data.table, str(tmp))
        return path


@hookimpl
def register_exporters(registry: ExporterRegistry) -> None:
    registry.add(JsonlExporter)
    registry.add(AlpacaExporter)
    registry.add(ShareGPTExporter)
    registry.add(OpenAIExporter, aliases=("openai-chat",))
    registry.add(ParquetExporter)

from __future__ import annotations

from pathlib import Path

import click

from instructgen.cli._common import emit_json, handles_errors, json_option


@click.command()
@click.argument("dataset_dir", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    required=True,
    help="Output format: jsonl, alpaca, sharegpt, openai, parquet, or a plugin's.",
)
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="File to write.")
@json_option
@handles_errors
def export(dataset_dir: Path, fmt: str, out: Path, as_json: bool) -> None:
    """Write the dataset saved in DATASET_DIR in another format."""
    from instructgen import plugins
    from instructgen.dataset import InstructionDataset

    plugins.exporters().get(fmt)  # unknown format: exit 2 before reading anything
    dataset = InstructionDataset.load(dataset_dir)
    written = dataset.export(fmt, out)
    if as_json:
        emit_json({"ok": True, "format": fmt, "rows": len(dataset), "path": str(written)})
    else:
        click.echo(f"wrote {len(dataset)} rows as {fmt} to {written}")

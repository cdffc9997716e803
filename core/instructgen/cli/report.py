from __future__ import annotations

from pathlib import Path

import click

from instructgen.cli._common import emit_json, handles_errors, json_option


@click.command()
@click.argument("dataset_dir", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="HTML file to write (default: DATASET_DIR/report.html).",
)
@click.option(
    "--tasks",
    type=click.Path(path_type=Path),
    default=None,
    help="The seed tasks file: similarity is then measured against the seeds.",
)
@json_option
@handles_errors
def report(dataset_dir: Path, out: Path | None, tasks: Path | None, as_json: bool) -> None:
    """Write a self-contained HTML report (charts, no network) of the dataset in DATASET_DIR."""
    from instructgen.report import write_report

    path = write_report(dataset_dir, out, tasks=tasks)
    if as_json:
        emit_json({"ok": True, "report": str(path)})
    else:
        click.echo(f"wrote {path}")

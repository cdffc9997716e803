from __future__ import annotations

from pathlib import Path

import click

from instructgen.cli._common import EXIT_USAGE, emit_json, handles_errors, json_option


@click.command()
@click.argument("tasks", type=click.Path(path_type=Path))
@json_option
@handles_errors
def validate(tasks: Path, as_json: bool) -> None:
    """Check TASKS (a tasks.jsonl file) against the seed-task schema. Writes nothing."""
    from instructgen.tasks import check_tasks

    good, problems = check_tasks(tasks)
    summary = {
        "ok": not problems,
        "file": str(tasks),
        "tasks": len(good),
        "classification": sum(t.is_classification for t in good),
        "instances": sum(len(t.instances) for t in good),
        "problems": [str(p) for p in problems],
    }
    if as_json:
        emit_json(summary)
    elif problems:
        for p in problems:
            click.echo(str(p), err=True)
        click.echo(f"{len(problems)} problem(s) in {tasks}", err=True)
    else:
        click.echo(
            f"{tasks}: {summary['tasks']} tasks, {summary['classification']} classification, "
            f"{summary['instances']} instances: OK"
        )
    if problems:
        click.get_current_context().exit(EXIT_USAGE)

from __future__ import annotations

from typing import Any

import click

from instructgen.cli._common import emit_json, handles_errors, json_option


@click.command()
@json_option
@handles_errors
def methods(as_json: bool) -> None:
    """List generation methods: what each does, its paper, the inputs it reads, its options
    (-m KEY VALUE) and the requests it sends per kept example."""
    import instructgen.runs  # noqa: F401 - registers the built-in methods
    from instructgen import plugins as pm

    reg = pm.methods()
    rows: list[dict[str, Any]] = []
    for entry in reg:
        row = entry.obj.describe()
        row["name"] = entry.name
        row["aliases"] = list(entry.aliases)
        row["plugin"] = entry.plugin
        rows.append(row)
    if as_json:
        emit_json({"methods": rows})
        return
    for row in rows:
        aliases = f" ({', '.join(row['aliases'])})" if row["aliases"] else ""
        click.echo(f"{row['name']}{aliases}  [plugin {row['plugin']}]")
        if row["title"]:
            click.echo(f"  {row['title']}")
        click.echo(f"  paper: {row['paper'] or '-'}")
        click.echo(f"  inputs: {', '.join(row['inputs'])}; engine roles: {', '.join(row['roles'])}")
        if row.get("roles_note"):
            click.echo(f"  roles: {row['roles_note']}")
        rpe = row["requests_per_example"]
        click.echo(
            "  cost: "
            + (f"{rpe:g} requests per kept example (measured)" if rpe else "not measured")
        )
        for o in row["options"]:
            choices = f" ({'|'.join(o['choices'])})" if o.get("choices") else ""
            click.echo(
                f"  -m {o['name']} {o['type']}{choices} = {o['default']!r}"
                + (f"  {o['help']}" if o["help"] else "")
            )

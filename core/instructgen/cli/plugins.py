from __future__ import annotations

from typing import Any

import click

from instructgen.cli._common import emit_json, handles_errors, json_option


@click.command()
@json_option
@handles_errors
def plugins(as_json: bool) -> None:
    """List installed plugins, their versions and what each registers."""
    import instructgen.runs  # noqa: F401 - registers the built-in "local" executor
    from instructgen import plugins as pm

    regs = pm.get_registries()
    # What cannot run here for want of a module, and the pip command that brings it.
    missing = {kind: reg.unavailable() for kind, reg in regs.items()}
    rows: list[dict[str, Any]] = []
    for info in pm.plugin_infos():
        registers = {kind: reg.by_plugin(info.name) for kind, reg in regs.items()}
        aliases = {
            name: list(reg.entry(name).aliases)
            for reg in regs.values()
            for name in reg.by_plugin(info.name)
            if reg.entry(name).aliases
        }
        unavailable = {
            f"{regs[kind].kind} {name}": missing[kind][name]
            for kind, names in registers.items()
            for name in names
            if name in missing[kind]
        }
        rows.append(
            {
                "name": info.name,
                "version": info.version,
                "distribution": info.distribution,
                "module": info.module,
                "source": info.source,
                "blocked": info.blocked,
                "error": info.error,
                "registers": {k: v for k, v in registers.items() if v},
                "aliases": aliases,
                "unavailable": unavailable,
            }
        )
    conflicts = [c for reg in regs.values() for c in reg.conflicts]
    if as_json:
        emit_json({"plugins": rows, "conflicts": conflicts})
        return
    for row in rows:
        state = " (blocked)" if row["blocked"] else (" (ERROR)" if row["error"] else "")
        if not state and row["unavailable"]:
            state = " (unavailable)"
        dist = f" [{row['distribution']} {row['version']}]" if row["distribution"] else ""
        click.echo(f"{row['name']}{dist}{state}")
        for kind, names in row["registers"].items():
            shown = [
                f"{n} ({', '.join(row['aliases'][n])})" if n in row["aliases"] else n for n in names
            ]
            click.echo(f"  {kind}: {', '.join(shown)}")
        for what, why in row["unavailable"].items():
            click.echo(f"  unavailable: {what} {why}")
        if row["error"]:
            click.echo(f"  error: {row['error']}")
    for c in conflicts:
        click.echo(f"warning: {c}")

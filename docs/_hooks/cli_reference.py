"""mkdocs hook: replace ``<!-- cli-reference -->`` with the help of every command, taken from
the CLI itself at build time, so the reference can never drift from the code."""

from __future__ import annotations

from typing import Any

import click

MARKER = "<!-- cli-reference -->"


def render() -> str:
    from instructgen.cli import cli

    ctx = click.Context(cli, info_name="instructgen")
    parts = ["## instructgen", "", "```text", cli.get_help(ctx), "```", ""]
    for name in cli.list_commands(ctx):
        cmd = cli.get_command(ctx, name)
        if cmd is None:
            continue
        sub = click.Context(cmd, info_name=name, parent=ctx)
        parts += [f"## instructgen {name}", "", "```text", cmd.get_help(sub), "```", ""]
    return "\n".join(parts)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, render())
    return markdown

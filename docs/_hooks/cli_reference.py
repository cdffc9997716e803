"""mkdocs hooks: replace ``<!-- cli-reference -->`` with the help of every command, taken from
the CLI itself at build time, and fail the build when the hook reference lacks a hook, so
neither can drift from the code."""

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
        if isinstance(cmd, click.Group):  # its sub-commands too: `instructgen cache check`
            for sub_name in cmd.list_commands(sub):
                inner = cmd.get_command(sub, sub_name)
                if inner is None:
                    continue
                ctx2 = click.Context(inner, info_name=sub_name, parent=sub)
                title = f"## instructgen {name} {sub_name}"
                parts += [title, "", "```text", inner.get_help(ctx2), "```", ""]
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri == "plugins/hooks.md":
        check_hook_reference(markdown, page)  # a hook missing from the reference fails
    if MARKER in markdown:
        return markdown.replace(MARKER, render())
    return markdown


def hook_signatures() -> dict[str, str]:
    """``name(params) -> return`` for every hookspec, as the hook reference must show them."""
    import inspect

    from instructgen import hookspecs

    out = {}
    for name, obj in vars(hookspecs).items():
        if callable(obj) and hasattr(obj, "instructgen_spec"):
            sig = inspect.signature(obj)
            params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
            out[name] = f"{name}({params}) -> {sig.return_annotation}"
    return out


def check_hook_reference(markdown: str, page: Any) -> None:
    missing = [sig for sig in hook_signatures().values() if sig not in markdown]
    if missing:
        from mkdocs.exceptions import PluginError

        raise PluginError(f"{page.file.src_uri} lacks hook signatures: {', '.join(missing)}")

"""The ``instructgen`` command. Thin: it parses, calls the Python API and renders the result.

Sub-commands live in their own modules and are imported only when invoked, so ``--help`` imports
no SDK, no ``datasets`` and no ``unstructured``.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import click

from instructgen import __version__

# name -> (module, attribute, one-line help shown by --help without importing the module)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "generate": (
        "instructgen.cli.generate",
        "generate",
        "Generate a dataset from seed tasks (Self-Instruct, or --method NAME).",
    ),
    "methods": (
        "instructgen.cli.methods",
        "methods",
        "List generation methods: paper, inputs, options, cost per example.",
    ),
    "from-dir": (
        "instructgen.cli.from_dir",
        "from_dir",
        "Generate a dataset from a directory of documents.",
    ),
    "extract": (
        "instructgen.cli.extract",
        "extract",
        "Show what a directory run would read, chunk and skip.",
    ),
    "validate": (
        "instructgen.cli.validate",
        "validate",
        "Check a tasks.jsonl file against the schema.",
    ),
    "export": ("instructgen.cli.export", "export", "Write a saved dataset in another format."),
    "judge": (
        "instructgen.cli.judge",
        "judge",
        "Rate a saved dataset's rows with an LLM judge; keep those above a threshold.",
    ),
    "report": (
        "instructgen.cli.report",
        "report",
        "Write a self-contained HTML report of a dataset.",
    ),
    "cache": (
        "instructgen.cli.cache",
        "cache",
        "Check a cache database, or salvage a damaged one.",
    ),
    "plugins": (
        "instructgen.cli.plugins",
        "plugins",
        "List installed plugins and what they register.",
    ),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n, (mod, _, _) in COMMANDS.items() if importlib.util.find_spec(mod))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = COMMANDS.get(cmd_name)
        if spec is None or importlib.util.find_spec(spec[0]) is None:
            return None
        cmd = getattr(importlib.import_module(spec[0]), spec[1])
        assert isinstance(cmd, click.Command)
        if not any(p.name == "debug" for p in cmd.params):
            cmd.params.append(_debug_option())
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        from instructgen.cli._common import setup_logging

        root = ctx.find_root()
        root.ensure_object(dict)
        root.obj["debug"] = True
        setup_logging(True)


def _debug_option() -> click.Option:
    """``--debug`` after the sub-command too (``instructgen generate ... --debug``)."""
    return click.Option(
        ["--debug"],
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_debug,
        help="Show tracebacks and debug logs.",
    )


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="instructgen")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Turn seed tasks or a folder of documents into an instruction-tuning dataset."""
    from instructgen.cli._common import setup_logging

    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    setup_logging(debug)


def main(argv: list[str] | None = None) -> Any:
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    return cli.main(args=args, prog_name="instructgen", obj={"argv": args})

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from instructgen.cli._common import emit_json, handles_errors, json_option
from instructgen.cli._run import ProgressRenderer, scan_limits, scan_options


@click.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=None,
    hidden=True,
    help="The same as --file-timeout.",
)
@scan_options
@json_option
@handles_errors
def extract(
    directory: Path,
    chunk_size: int,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    timeout: float | None,
    as_json: bool,
    **limits: Any,
) -> None:
    """Show what a directory run would read: per file the extractor, characters and chunks, or
    why it is skipped. Needs no engine and sends nothing."""
    from dataclasses import replace

    from instructgen.documents.pipeline import read_dir

    options = scan_limits(limits)
    if timeout is not None:
        options = replace(options, timeout=timeout)
    renderer = ProgressRenderer(enabled=not as_json)
    try:
        result = read_dir(
            directory,
            options,
            chunk_size=chunk_size,
            include=include,
            exclude=exclude,
            progress=renderer,
        )
    finally:
        renderer.close()
    chunks: dict[str, int] = {}
    for c in result.chunks:
        chunks[c.rel] = chunks.get(c.rel, 0) + 1
    files = [{**f.to_dict(), "chunks": chunks.get(f.rel, 0)} for f in result.files]
    summary = result.summary()
    left_out = _left_out_by_globs(directory, include, exclude, summary["files"])
    if left_out is not None:
        summary["left_out_by_globs"] = left_out
    if as_json:
        emit_json({"ok": True, "summary": summary, "files": files})
        return
    for f in files:
        if f["skip"]:
            click.echo(f"skip  {f['rel']}: {f['skip']}")
        else:
            click.echo(
                f"read  {f['rel']}: {f['extractor']}, {f['chars']:,} characters, "
                f"{f['chunks']} chunk(s)"
            )
    s = summary
    globs = f"; {left_out} left out by --include/--exclude" if left_out else ""
    click.echo(
        f"{s['read']} of {s['files']} files read, {s['skipped']} skipped, "
        f"{s['characters']:,} characters in {s['chunks']} chunks{globs}"
    )


def _left_out_by_globs(
    directory: Path, include: tuple[str, ...], exclude: tuple[str, ...], matched: int
) -> int | None:
    """How many files --include/--exclude left out (None without globs): a listing that says
    "0 of 0 files" should also say that 4 did not match."""
    if not include and not exclude:
        return None
    from instructgen.documents.discovery import discover

    return max(0, len(discover(directory)) - matched)

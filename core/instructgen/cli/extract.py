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

    from instructgen.documents.discovery import discover_files
    from instructgen.documents.stream import Tally, stream_chunks

    options = scan_limits(limits)
    if timeout is not None:
        options = replace(options, timeout=timeout)
    found = discover_files(directory, options, include=include, exclude=exclude)
    # Files are listed as they are read, in discovery order (a file waits only for the files
    # before it); only what the listing shows is kept, never the text.
    tally = Tally()
    chunks: dict[int, int] = {}
    shown = 0
    renderer = ProgressRenderer(enabled=not as_json)

    def show_ready() -> None:
        nonlocal shown
        while (f := tally.get(shown)) is not None:
            renderer.clear()
            click.echo(_listing_line(f, chunks.get(shown, 0)))
            shown += 1

    try:
        for i, parts in stream_chunks(
            found, options, None, chunk_size=chunk_size, tally=tally, progress=renderer
        ):
            chunks[i] = len(parts)
            if not as_json:
                show_ready()
        if not as_json:
            show_ready()
    finally:
        renderer.close()
    summary = tally.summary()
    left_out = _left_out_by_globs(directory, include, exclude, summary["files"])
    if left_out is not None:
        summary["left_out_by_globs"] = left_out
    if as_json:
        files = [{**f, "chunks": chunks.get(i, 0)} for i, f in enumerate(tally.files)]
        emit_json({"ok": True, "summary": summary, "files": files})
        return
    s = summary
    globs = f"; {left_out} left out by --include/--exclude" if left_out else ""
    click.echo(
        f"{s['read']} of {s['files']} files read, {s['skipped']} skipped, "
        f"{s['characters']:,} characters in {s['chunks']} chunks{globs}"
    )


def _listing_line(f: dict[str, Any], chunks: int) -> str:
    if f["skip"]:
        return f"skip  {f['rel']}: {f['skip']}"
    return f"read  {f['rel']}: {f['extractor']}, {f['chars']:,} characters, {chunks} chunk(s)"


def _left_out_by_globs(
    directory: Path, include: tuple[str, ...], exclude: tuple[str, ...], matched: int
) -> int | None:
    """How many files --include/--exclude left out (None without globs): a listing that says
    "0 of 0 files" should also say that 4 did not match."""
    if not include and not exclude:
        return None
    from instructgen.documents.discovery import discover

    return max(0, len(discover(directory)) - matched)

from __future__ import annotations

from pathlib import Path

import click

from instructgen.cli._common import EXIT_FAILED, emit_json, handles_errors, json_option

_PATH = click.argument("path", type=click.Path(path_type=Path))


@click.group()
def cache() -> None:
    """Check a cache database, or salvage the readable entries of a damaged one.

    PATH is a cache file (cache.sqlite3, extract-cache.sqlite3) or an output folder holding
    them."""


@cache.command()
@_PATH
@json_option
@handles_errors
def check(path: Path, as_json: bool) -> None:
    """Check PATH's caches for damage (reads every page; writes nothing). Exit 0 when sound,
    1 when damaged (run `instructgen cache repair PATH`), 2 when PATH holds no cache."""
    from instructgen.cache_repair import check_cache, find_caches

    results = [check_cache(p) for p in find_caches(path)]
    damaged = [r for r in results if not r.ok]
    if as_json:
        emit_json({"ok": not damaged, "caches": [r.to_dict() for r in results]})
    else:
        for r in results:
            if r.ok:
                click.echo(f"{r.path}: OK")
            else:
                click.echo(
                    f"{r.path}: damaged ({'; '.join(r.problems[:3])}); keep what is readable "
                    f"with: instructgen cache repair {r.path}",
                    err=True,
                )
    if damaged:
        click.get_current_context().exit(EXIT_FAILED)


@cache.command()
@_PATH
@json_option
@handles_errors
def repair(path: Path, as_json: bool) -> None:
    """Salvage the readable entries of PATH's damaged caches into new files in their place.

    The damaged file is kept, renamed NAME.damaged-YYYYMMDD-HHMMSS; a sound cache is left
    untouched. Rerun the command that made the cache to resume: it asks again only for the
    answers that were lost."""
    from instructgen.cache_repair import find_caches, repair_cache

    results = [repair_cache(p) for p in find_caches(path)]
    if as_json:
        emit_json({"ok": True, "caches": [r.to_dict() for r in results]})
        return
    for r in results:
        if r.damaged_copy is None:
            click.echo(f"{r.path}: not damaged; nothing changed")
            continue
        kept = ", ".join(f"{n} {table}" for table, n in r.kept.items())
        click.echo(
            f"{r.path}: repaired, kept {kept}; {r.unreadable} unreadable reads skipped; the "
            f"damaged file is kept as {r.damaged_copy}"
        )

"""``instructgen judge DATASET``: rate a saved dataset's rows with the llm-judge filter and
write the rows kept, with their ``judge_score``, to a new dataset folder."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from instructgen.atomic import write_json_atomic
from instructgen.cli._common import EXIT_FAILED, emit_json, handles_errors
from instructgen.cli._run import (
    ProgressRenderer,
    RunOptions,
    record_totals,
    record_unfinished,
    run_options,
    spending_summary,
)
from instructgen.money import format_usd


@click.command()
@click.argument("dataset_dir", type=click.Path(path_type=Path))
@click.option(
    "--threshold",
    type=click.FloatRange(min=0),
    default=None,
    help="Keep the rows rated at least this on the judge's 0-5 scale (default 4.5).",
)
@click.option(
    "--judge",
    "judge_name",
    default="llm-judge",
    show_default=True,
    help="The row judge (a filter plugin of stage row).",
)
@click.option(
    "--cache",
    "cache_file",
    type=click.Path(path_type=Path),
    default=None,
    help="The response cache to use (default: DATASET_DIR/cache.sqlite3 when the run that "
    "made the dataset left one there, so ratings made during that run are not paid again; "
    "else --out's).",
)
@run_options
@handles_errors
def judge(
    dataset_dir: Path,
    threshold: float | None,
    judge_name: str,
    cache_file: Path | None,
    **common: Any,
) -> None:
    """Rate every row of the dataset saved in DATASET_DIR (instruction, input, output) with an
    LLM judge, and save the rows rated at least --threshold, with their judge_score, to --out.
    """
    from instructgen import plugins
    from instructgen.dataset import InstructionDataset
    from instructgen.errors import ConfigError
    from instructgen.filter import RowJudge
    from instructgen.outdir import lock_output

    opts = RunOptions.pop_from(common)
    cls = plugins.filters().get(judge_name)  # unknown: exit 2 with the list
    if not (isinstance(cls, type) and issubclass(cls, RowJudge)):
        raise ConfigError(f"--judge {judge_name!r} is an instruction filter, not a row judge")
    dataset = InstructionDataset.load(dataset_dir)
    out = opts.out or dataset_dir.with_name(dataset_dir.name + "-judged")
    if out.resolve() == dataset_dir.resolve():
        raise ConfigError("--out must be another folder than DATASET_DIR")
    options: dict[str, Any] = {"threshold": threshold} if threshold is not None else {}
    try:
        probe = cls(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"--threshold: {exc}") from None
    if opts.dry_run:
        _dry_run(probe, dataset, opts)
        return
    opts.out = out
    engine = opts.build_engine()
    click.get_current_context().call_on_close(lock_output(out, what="--out").release)
    if opts.no_cache:
        cache: bool | Path = False
    elif cache_file is not None:  # a folder's cache.sqlite3 is named by its folder
        cache = cache_file.parent if cache_file.name == "cache.sqlite3" else cache_file
    elif (dataset_dir / "cache.sqlite3").is_file():
        cache = dataset_dir
    else:
        cache = out
    renderer = ProgressRenderer(enabled=not opts.as_json, expected_requests=len(dataset))
    try:
        judged = asyncio.run(
            dataset.ajudge(
                engine,
                judge=judge_name,
                judge_options=options,
                cache=cache,
                config=opts.dispatch_config(),
                progress=renderer,
            )
        )
    except BaseException:
        record_unfinished(out, renderer)
        raise
    finally:
        renderer.close()
    report = judged.run_report
    report["input"] = {"dataset": str(dataset_dir), "cache": str(cache) if cache else None}
    record_totals(report, out)
    judged.save(out)
    write_json_atomic(out / "run.json", report)
    j = report["judge"]
    if opts.as_json:
        emit_json(
            {
                "ok": len(judged) > 0,
                "rows_in": len(dataset),
                "examples": len(judged),
                "out": str(out),
                "requests": report["requests"],
                "judge": j,
            }
        )
    else:
        click.echo(
            f"kept {len(judged)} of {len(dataset)} rows (rated at least {j['threshold']:g}; "
            f"{j['rows_unjudged']} unjudged) to {out}; histogram "
            + " ".join(f"{k}:{v}" for k, v in j["histogram"].items())
            + f"; {spending_summary(report)}"
        )
    if len(judged) == 0 and len(dataset):
        click.echo("error: the judge kept no row; see run.json's judge section", err=True)
        click.get_current_context().exit(EXIT_FAILED)


def _dry_run(judge: Any, dataset: Any, opts: RunOptions) -> None:
    """The ratings' requests and cost, priced on the dataset's own rows; nothing is sent."""
    from instructgen.engine_contract import Usage
    from instructgen.engines import engine_class
    from instructgen.tokens import prompt_tokens

    cls = engine_class(opts.engine_name)
    model = opts.model or cls.default_model
    price = cls.model_price(model)
    chat = cls.kind == "chat"
    prompt = sum(prompt_tokens(judge.request(r, chat=chat)) for r in dataset)
    usage = Usage(prompt, 40 * len(dataset))
    worst = Usage(prompt, judge.max_tokens * len(dataset) if hasattr(judge, "max_tokens") else 0)
    summary = {
        "engine": cls.name,
        "model": model,
        "rows": len(dataset),
        "requests": len(dataset),
        "prompt_tokens": prompt,
        "expected_cost_usd": None if price is None else round(price.cost(usage), 6),
        "max_cost_usd": None if price is None else round(price.cost(worst), 6),
    }
    if opts.as_json:
        emit_json({"ok": True, "dry_run": True, **summary})
        return
    cost = (
        "unknown (no price for this model)"
        if price is None
        else (f"expected {format_usd(price.cost(usage))}, at most {format_usd(price.cost(worst))}")
    )
    click.echo(
        f"dry run, nothing sent: {len(dataset)} rating requests to {cls.name} ({model}), "
        f"~{prompt:,} prompt tokens, cost {cost}"
    )

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from instructgen.atomic import write_json_atomic
from instructgen.cli._common import EXIT_FAILED, emit_json, handles_errors
from instructgen.cli._run import (
    ProgressRenderer,
    RunOptions,
    chosen_filters,
    filter_settings,
    format_option,
    record_totals,
    record_unfinished,
    run_options,
    self_instruct_options,
    size_options,
    spending_summary,
)
from instructgen.money import format_usd

if TYPE_CHECKING:
    from instructgen.dataset import InstructionDataset
    from instructgen.engine_contract import Engine
    from instructgen.tasks import SeedTask


@click.command()
@click.argument("tasks", type=click.Path(path_type=Path))
@size_options
@self_instruct_options
@format_option
@run_options
@handles_errors
def generate(
    tasks: Path,
    n_examples: int,
    num_instructions: int,
    num_prompt_instructions: int,
    window: int,
    rouge_tokenizer: str,
    allow_non_ascii: bool,
    add_filters: tuple[str, ...],
    drop_filters: tuple[str, ...],
    fmt: str | None,
    **common: Any,
) -> None:
    """Generate a dataset from seed TASKS (a tasks.jsonl file) with Self-Instruct.

    Rerunning the same command resumes from the cache in --out; deleting --out starts afresh.
    """
    from instructgen import plugins
    from instructgen.limits import check_dataset_size
    from instructgen.outdir import lock_output
    from instructgen.selfinstruct.estimate import expected_requests
    from instructgen.selfinstruct.options import SelfInstructOptions
    from instructgen.tasks import load_tasks

    opts = RunOptions.pop_from(common)
    seed_tasks = load_tasks(tasks)  # exit 2 with FILE:LINE: FIELD on a bad file
    # a size --num-instructions can never reach: exit 2 before anything is sent
    check_dataset_size(n_examples, num_instructions, SelfInstructOptions().max_instances_per_task)
    if fmt is not None:
        plugins.exporters().get(fmt)  # unknown format: exit 2 before anything is sent
    filters = chosen_filters(add_filters, drop_filters)  # unknown name: exit 2
    if opts.dry_run:
        _dry_run(seed_tasks, opts, n_examples, num_instructions, num_prompt_instructions)
        return
    out = opts.out or Path(f"{tasks.stem}-dataset")
    opts.out = out
    engine = opts.build_engine()  # a missing key or extra: exit 2 before --out is made
    # refuse a folder of other files, or one another run is writing, before anything is sent
    click.get_current_context().call_on_close(lock_output(out, what="--out").release)
    renderer = ProgressRenderer(
        enabled=not opts.as_json, expected_requests=expected_requests(num_instructions)
    )
    try:
        result = asyncio.run(
            _generate(
                seed_tasks,
                opts,
                n_examples,
                num_instructions,
                num_prompt_instructions,
                window,
                rouge_tokenizer,
                allow_non_ascii,
                filters,
                engine,
                renderer,
            )
        )
    except BaseException:
        record_unfinished(out, renderer)  # what it paid stays in the run's totals
        raise
    dataset, report = result
    record_totals(report, out)  # before the save: metadata.json carries them too
    dataset.save(out)
    exported = None
    if fmt is not None:
        ext = plugins.exporters().get(fmt).extension
        exported = str(dataset.export(fmt, out / f"dataset.{ext}"))
    report["output"] = {"dir": str(out), "exported": exported}
    write_json_atomic(out / "run.json", report)
    summary = {
        "ok": len(dataset) > 0,
        "examples": len(dataset),
        "requested": n_examples,
        "instructions": report.get("instructions_generated"),
        "out": str(out),
        "exported": exported,
        "requests": report["requests"],
        "totals": report["totals"],
        "unparsed_instance_replies": (report.get("unparsed_instance_replies") or {}).get(
            "unparsed", 0
        ),
    }
    if opts.as_json:
        emit_json(summary)
    else:
        click.echo(
            f"wrote {len(dataset)} of {n_examples} examples "
            f"({report.get('instructions_generated')} instructions) to {out}; "
            f"{spending_summary(report)}; "
            f"{(report.get('unparsed_instance_replies') or {}).get('unparsed', 0)} "
            "instance replies unparsed" + _batch_summary(report["requests"])
        )
    if len(dataset) == 0:
        click.echo(
            "error: no examples were produced; see run.json for failed requests and filter drops",
            err=True,
        )
        click.get_current_context().exit(EXIT_FAILED)
    # Fewer examples than asked: the pipeline has already logged why (once).


async def _generate(
    seed_tasks: list[SeedTask],
    opts: RunOptions,
    n_examples: int,
    num_instructions: int,
    num_prompt_instructions: int,
    window: int,
    rouge_tokenizer: str,
    allow_non_ascii: bool,
    filters: list[str] | None,
    engine: Engine | None = None,
    renderer: ProgressRenderer | None = None,
) -> tuple[InstructionDataset, dict[str, Any]]:
    from instructgen.dataset import InstructionDataset
    from instructgen.selfinstruct.estimate import expected_requests
    from instructgen.selfinstruct.options import SelfInstructOptions

    cache_path = opts.cache_path()
    if renderer is None:
        renderer = ProgressRenderer(
            enabled=not opts.as_json, expected_requests=expected_requests(num_instructions)
        )
    try:
        dataset = await InstructionDataset.agenerate_dataset(
            seed_tasks,
            engine if engine is not None else opts.build_engine(),
            n_examples,
            num_instructions,
            cache=cache_path if cache_path else False,
            config=opts.dispatch_config(),
            progress=renderer,
            seed=opts.seed,
            filters=filters,
            filter_options=filter_settings(rouge_tokenizer, allow_non_ascii),
            self_instruct=SelfInstructOptions(
                num_prompt_instructions=num_prompt_instructions, window=window
            ),
        )
    finally:
        renderer.close()
    return dataset, dataset.run_report


def _batch_summary(requests: dict[str, Any]) -> str:
    batch = requests.get("batch")
    if not batch:
        return ""
    return (
        f"; batch: {batch['requests_completed']} requests answered in "
        f"{batch['batches_submitted']} batches ({batch['batches_resumed']} resumed), "
        f"{format_usd(batch['cost_usd'])} of the cost"
    )


def _dry_run(
    seed_tasks: list[SeedTask],
    opts: RunOptions,
    n_examples: int,
    num_instructions: int,
    num_prompt_instructions: int,
) -> None:
    """First prompts, the expected cost and an upper bound; builds no client and needs no
    key."""
    from instructgen.engines import engine_class
    from instructgen.selfinstruct.estimate import estimate_self_instruct

    cls = engine_class(opts.engine_name)
    cls.check_options(dict(opts.engine_options))  # a bad -o exits 2 in a dry run too
    model = opts.model or cls.default_model
    est = estimate_self_instruct(
        cls,
        model,
        [t.instruction for t in seed_tasks],
        num_instructions=num_instructions,
        num_prompt_instructions=num_prompt_instructions,
        classification_share=sum(t.is_classification for t in seed_tasks) / max(1, len(seed_tasks)),
        seed=opts.seed,
        batch=opts.batch,
    )
    boot, inst = est.bootstrap, est.instances
    fields = est.to_dict()
    summary = {
        "engine": cls.name,
        "model": model,
        "kind": cls.kind,
        "seed_tasks": len(seed_tasks),
        "num_instructions": num_instructions,
        "num_instructions_for_finetuning": n_examples,
        "requests": fields["requests"],
        "prompt_tokens": fields["prompt_tokens"],
        "max_completion_tokens": fields["max_completion_tokens"],
        "max_cost_usd": fields["max_cost_usd"],
        "batch": opts.batch,
        "expected_prompt_tokens": fields["expected_prompt_tokens"],
        "prompt_tokens_counted": fields["prompt_tokens_counted"],
        "expected_completion_tokens": fields["expected_completion_tokens"],
        "expected_cost_usd": fields["expected_cost_usd"],
        "first_prompts": {
            "bootstrap": boot.as_prompt(),
            "classify": est.classify.as_prompt()[-300:],
            "instances": inst.as_prompt()[-300:],
        },
    }
    if opts.as_json:
        emit_json({"ok": True, "dry_run": True, **summary})
        return
    click.echo("-- first bootstrap prompt " + "-" * 40)
    click.echo(boot.as_prompt())
    click.echo("-- the first instance prompt, its last 300 characters " + "-" * 12)
    click.echo("..." + inst.as_prompt()[-300:])
    click.echo("-" * 66)
    click.echo(
        f"dry run, nothing sent: about {est.total_requests} requests to "
        f"{cls.name} ({model}), ~{est.prompt_tokens:,} prompt tokens, at most "
        f"{est.max_completion_tokens:,} completion tokens, cost {est.cost_text()}"
    )

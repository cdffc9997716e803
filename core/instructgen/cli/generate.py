from __future__ import annotations

import asyncio
import math
import random
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
    run_options,
    self_instruct_options,
    size_options,
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
        )
    )
    dataset, report = result
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
        "unparsed_instance_replies": (report.get("unparsed_instance_replies") or {}).get(
            "unparsed", 0
        ),
    }
    if opts.as_json:
        emit_json(summary)
    else:
        req = report["requests"]
        click.echo(
            f"wrote {len(dataset)} of {n_examples} examples "
            f"({report.get('instructions_generated')} instructions) to {out}; "
            f"{req['requests_sent']} requests sent"
            + (f" ({req['requests_failed']} failed)" if req.get("requests_failed") else "")
            + f", {req['requests_cached']} cached, "
            f"{req['prompt_tokens'] + req['completion_tokens']:,} tokens, "
            f"{format_usd(req['cost_usd'])}; "
            f"{(report.get('unparsed_instance_replies') or {}).get('unparsed', 0)} "
            "instance replies unparsed" + _batch_summary(req)
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
) -> tuple[InstructionDataset, dict[str, Any]]:
    from instructgen.dataset import InstructionDataset
    from instructgen.selfinstruct.options import SelfInstructOptions

    cache_path = opts.cache_path()
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


def expected_requests(num_instructions: int) -> int:
    """Requests a run is expected to send: bootstrap requests while the expected yield
    (PRIOR_YIELD kept instructions a request) does not cover the target, then one
    classification and one instance request per instruction."""
    from instructgen.selfinstruct.window import PRIOR_YIELD

    return math.ceil(num_instructions / PRIOR_YIELD) + 2 * num_instructions


def _dry_run(
    seed_tasks: list[SeedTask],
    opts: RunOptions,
    n_examples: int,
    num_instructions: int,
    num_prompt_instructions: int,
) -> None:
    """First prompts and an upper-bound estimate; builds no client and needs no key."""
    from instructgen.dispatch import estimate
    from instructgen.engine_contract import Usage
    from instructgen.engines import engine_class
    from instructgen.selfinstruct import prompts
    from instructgen.tokens import expected_prompt_tokens

    cls = engine_class(opts.engine_name)
    cls.check_options(dict(opts.engine_options))  # a bad -o exits 2 in a dry run too
    model = opts.model or cls.default_model
    chat = cls.kind == "chat"
    rng = random.Random(opts.seed)
    instructions = [t.instruction for t in seed_tasks]
    first = rng.sample(instructions, min(len(instructions), num_prompt_instructions))
    # The follow-up prompts of a typical instruction: the seed of median length.
    typical = sorted(instructions, key=len)[len(instructions) // 2]
    boot = prompts.bootstrap_request(first, chat)
    clf = prompts.classify_request(typical, chat)
    inst = prompts.instances_request(typical, False, chat)
    clf_inst = prompts.instances_request(typical, True, chat)
    n_boot = expected_requests(num_instructions) - 2 * num_instructions

    est = estimate(
        [boot] * n_boot + [clf] * num_instructions + [inst] * num_instructions,
        cls.model_price(model),
    )
    prompt_tokens, completion_tokens, cost = est.prompt_tokens, est.completion_tokens, est.cost
    price = cls.model_price(model)
    follow_price = price
    if price is not None and opts.batch:  # classification and instances at the batch price
        from instructgen.batching import batch_price

        follow_price = batch_price(price)
        cost = (estimate([boot] * n_boot, price).cost or 0.0) + (
            estimate([clf, inst] * num_instructions, follow_price).cost or 0.0
        )
    # What the run is expected to cost (beside the bound above): prompts counted with the
    # engine's tokenizer where one is on this machine (else about 4 characters a token),
    # replies of the lengths the paper's data has (prompts.EXPECTED_COMPLETION_TOKENS), and
    # classification tasks (whose instance prompt is shorter) as common as among the seeds.
    count = cls.token_counter(model)
    share = sum(t.is_classification for t in seed_tasks) / max(1, len(seed_tasks))
    instance_prompt = share * expected_prompt_tokens(clf_inst, count) + (
        1 - share
    ) * expected_prompt_tokens(inst, count)
    lengths = prompts.EXPECTED_COMPLETION_TOKENS
    boot_usage = Usage(n_boot * expected_prompt_tokens(boot, count), n_boot * lengths["bootstrap"])
    follow_usage = Usage(
        round(num_instructions * (expected_prompt_tokens(clf, count) + instance_prompt)),
        num_instructions * (lengths["classify"] + lengths["instances"]),
    )
    expected_prompt = boot_usage.prompt_tokens + follow_usage.prompt_tokens
    expected_completion = boot_usage.completion_tokens + follow_usage.completion_tokens
    expected_cost = (
        price.cost(boot_usage) + follow_price.cost(follow_usage)
        if price is not None and follow_price is not None
        else None
    )
    summary = {
        "engine": cls.name,
        "model": model,
        "kind": cls.kind,
        "seed_tasks": len(seed_tasks),
        "num_instructions": num_instructions,
        "num_instructions_for_finetuning": n_examples,
        "requests": {
            "bootstrap": n_boot,
            "classify": num_instructions,
            "instances": num_instructions,
            "total": n_boot + 2 * num_instructions,
        },
        "prompt_tokens": prompt_tokens,
        "max_completion_tokens": completion_tokens,
        "max_cost_usd": None if cost is None else round(cost, 4),
        "batch": opts.batch,
        "expected_prompt_tokens": expected_prompt,
        "prompt_tokens_counted": "with the model's tokenizer"
        if count
        else "as 4 characters a token",
        "expected_completion_tokens": expected_completion,
        "expected_cost_usd": None if expected_cost is None else round(expected_cost, 6),
        "first_prompts": {
            "bootstrap": boot.as_prompt(),
            "classify": clf.as_prompt()[-300:],
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
    cost_text = (
        "unknown (no price for this model)"
        if cost is None or expected_cost is None
        else f"expected {format_usd(expected_cost)}, at most {format_usd(cost)}"
    )
    click.echo(
        f"dry run, nothing sent: about {n_boot + 2 * num_instructions} requests to "
        f"{cls.name} ({model}), ~{prompt_tokens:,} prompt tokens, at most "
        f"{completion_tokens:,} completion tokens, cost {cost_text}"
    )

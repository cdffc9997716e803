from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from instructgen.cli._common import emit_json, handles_errors
from instructgen.cli._run import (
    ProgressRenderer,
    RunOptions,
    check_judge_flags,
    chosen_filters,
    filter_settings,
    finish_run,
    format_option,
    hedges_summary,
    judge_chosen,
    list_note,
    prompts_per_request,
    record_unfinished,
    role_options,
    role_summary,
    run_options,
    self_instruct_options,
    size_options,
    spending_summary,
)
from instructgen.money import format_usd
from instructgen.selfinstruct.options import SelfInstructOptions

if TYPE_CHECKING:
    from instructgen.dataset import InstructionDataset
    from instructgen.engine_contract import Engine
    from instructgen.tasks import SeedTask


EMPTY = "see run.json for failed requests and filter drops"


@click.command()
@click.argument("tasks", type=click.Path(path_type=Path))
@click.option(
    "--method",
    "method_name",
    default=None,
    help="Generation method (default: self-instruct); `instructgen methods` lists them. TASKS "
    "is then what the method reads: a tasks.jsonl, a JSONL of instructions, a saved dataset's "
    "folder or a folder of documents.",
)
@click.option(
    "-m",
    "--method-option",
    "method_opts",
    type=(str, str),
    multiple=True,
    metavar="KEY VALUE",
    help="A method option, e.g. -m num_prompt_instructions 3 (repeatable; `instructgen "
    "methods` lists each method's).",
)
@size_options
@self_instruct_options
@format_option
@run_options
@role_options
@handles_errors
def generate(
    tasks: Path,
    method_name: str | None,
    method_opts: tuple[tuple[str, str], ...],
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
    from instructgen.tasks import load_tasks

    opts = RunOptions.pop_from(common)
    given = dict(method_opts)
    filters = chosen_filters(add_filters, drop_filters)  # unknown name: exit 2
    check_judge_flags(opts, filters)
    settings = {**filter_settings(rouge_tokenizer, allow_non_ascii), **opts.judge_filter_options()}
    other = method_name is not None and method_name.lower() != "self-instruct"
    if opts.dry_run and not other and (opts.role_engine_given() or judge_chosen(filters)):
        # the dry run per engine: Self-Instruct's stages priced by the engine of their role
        method_name, other = "self-instruct", True
        given.setdefault("num_prompt_instructions", str(num_prompt_instructions))
        given.setdefault("window", str(window))
    if other:
        assert method_name is not None
        _generate_method(
            tasks,
            method_name,
            given,
            opts,
            n_examples=n_examples,
            num_instructions=num_instructions,
            flags={"num_prompt_instructions": num_prompt_instructions, "window": window},
            filter_options=settings,
            filters=filters,
            fmt=fmt,
        )
        return
    if given:  # Self-Instruct's own options by -m: the flags above are the same options
        from instructgen.method import parse_options

        parsed = parse_options(
            "self-instruct",
            SelfInstructOptions,
            {"num_prompt_instructions": num_prompt_instructions, "window": window, **given},
        )
        num_prompt_instructions = parsed.num_prompt_instructions  # type: ignore[attr-defined]
        window = parsed.window  # type: ignore[attr-defined]
    seed_tasks = load_tasks(tasks)  # exit 2 with FILE:LINE: FIELD on a bad file
    # a size --num-instructions can never reach: exit 2 before anything is sent
    check_dataset_size(n_examples, num_instructions, SelfInstructOptions().max_instances_per_task)
    if fmt is not None:
        plugins.exporters().get(fmt)  # unknown format: exit 2 before anything is sent
    if opts.dry_run:
        _dry_run(seed_tasks, opts, n_examples, num_instructions, num_prompt_instructions)
        return
    out = opts.out or Path(f"{tasks.stem}-dataset")
    opts.out = out
    engine = opts.build_engine()  # a missing key or extra: exit 2 before --out is made
    roles = (opts.role_engine("answers"), opts.role_engine("judge"))
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
                roles,
                settings,
            )
        )
    except BaseException:
        record_unfinished(out, renderer)  # what it paid stays in the run's totals
        raise
    dataset, _ = result

    def summary(report: dict[str, Any], exported: str | None) -> dict[str, Any]:
        return {
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
            **_roles_json(report),
        }

    def line(report: dict[str, Any], exported: str | None) -> str:
        return (
            f"wrote {len(dataset)} of {n_examples} examples "
            f"({report.get('instructions_generated')} instructions) to {out}; "
            f"{spending_summary(report)}; "
            f"{(report.get('unparsed_instance_replies') or {}).get('unparsed', 0)} "
            "instance replies unparsed" + _batch_summary(report["requests"]) + role_summary(report)
        )

    finish_run(dataset, out, fmt, as_json=opts.as_json, summary=summary, line=line, empty=EMPTY)
    # Fewer examples than asked: the pipeline has already logged why (once).


def _explicit(name: str) -> bool:
    ctx = click.get_current_context()
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _generate_method(
    tasks: Path,
    method_name: str,
    given: dict[str, str],
    opts: RunOptions,
    *,
    n_examples: int,
    num_instructions: int,
    flags: dict[str, int],
    filter_options: dict[str, dict[str, Any]] | None,
    filters: list[str] | None,
    fmt: str | None,
) -> None:
    """``generate --method NAME``: any registered method through ``run_method``."""
    from instructgen import plugins
    from instructgen.dataset import InstructionDataset
    from instructgen.errors import ConfigError
    from instructgen.method import RunSize
    from instructgen.outdir import lock_output
    from instructgen.runs import get_method, load_method_input

    cls = plugins.methods().get(method_name)  # unknown: exit 2 with the list
    names = {s.name for s in cls.option_specs()}
    for flag, value in flags.items():
        if _explicit(flag) and flag not in given:
            if flag not in names:
                raise ConfigError(
                    f"--{flag.replace('_', '-')} is Self-Instruct's; method {cls.name!r} "
                    f"takes: {', '.join(sorted(names)) or 'no options'} (-m KEY VALUE)"
                )
            given[flag] = str(value)
    method = get_method(cls, given)  # unknown or bad option: exit 2 with the list
    size = RunSize(n_examples, num_instructions, opts.seed)
    method.check_size(size)
    source = load_method_input(tasks)  # a bad file: exit 2 with FILE:LINE: FIELD
    method.check_input(source)
    if fmt is not None:
        plugins.exporters().get(fmt)
    if opts.dry_run:
        _dry_run_method(method, source, opts, size, filters, filter_options)
        return
    out = opts.out or Path(f"{tasks.stem}-dataset")
    opts.out = out
    engine = opts.build_engine()
    response, judge = opts.role_engine("answers"), opts.role_engine("judge")
    click.get_current_context().call_on_close(lock_output(out, what="--out").release)
    expected = sum(e.expected for e in method.estimate(source, size, chat=engine.kind == "chat"))
    renderer = ProgressRenderer(enabled=not opts.as_json, expected_requests=round(expected))
    cache_dir = opts.cache_dir()
    try:
        dataset = asyncio.run(
            InstructionDataset.agenerate_dataset(
                tasks,
                engine,
                n_examples,
                num_instructions,
                cache=cache_dir if cache_dir else False,
                config=opts.dispatch_config(),
                progress=renderer,
                seed=opts.seed,
                filters=filters,
                filter_options=filter_options,
                method=method,
                response_engine=response,
                response_config=opts.response_config(),
                judge_engine=judge,
                judge_config=opts.judge_config(),
            )
        )
    except BaseException:
        record_unfinished(out, renderer)
        raise
    finally:
        renderer.close()

    def summary(report: dict[str, Any], exported: str | None) -> dict[str, Any]:
        return {
            "ok": len(dataset) > 0,
            "method": method.name,
            "examples": len(dataset),
            "requested": n_examples,
            "out": str(out),
            "exported": exported,
            "requests": report["requests"],
            **_roles_json(report),
        }

    def line(report: dict[str, Any], exported: str | None) -> str:
        req = report["requests"]
        return (
            f"wrote {len(dataset)} of {n_examples} examples ({method.name}) to {out}; "
            f"{req['requests_sent']} requests sent"
            + hedges_summary(req.get("hedges_sent", 0))
            + (f" ({req['requests_failed']} failed)" if req.get("requests_failed") else "")
            + f", {req['requests_cached']} cached, "
            f"{req['prompt_tokens'] + req['completion_tokens']:,} tokens, "
            f"{format_usd(req['cost_usd'])}" + _batch_summary(req) + role_summary(report)
        )

    finish_run(dataset, out, fmt, as_json=opts.as_json, summary=summary, line=line, empty=EMPTY)


def _judge_estimate(
    source: Any,
    size: Any,
    filters: list[str] | None,
    filter_options: dict[str, dict[str, Any]] | None,
    chat: bool,
) -> Any:
    """The judge's stage for the dry run: one rating per row it rates (the rows wanted over
    the share it is expected to keep), priced on a row of typical length."""
    from instructgen import plugins
    from instructgen.filter import RowJudge
    from instructgen.method import RequestEstimate
    from instructgen.methods.judging import PRIOR_PASS_RATE

    reg = plugins.filters()
    for name in filters or []:
        cls = reg.get(name)
        if isinstance(cls, type) and issubclass(cls, RowJudge):
            judge = cls(**(filter_options or {}).get(reg.entry(name).name, {}))
            first = (source.instructions() or ["An instruction of typical length."])[0]
            row = {"instruction": first, "text": "", "target": "word " * 120}
            return RequestEstimate(
                "judge",
                judge.request(row, chat=chat),
                size.n / PRIOR_PASS_RATE,
                role=judge.role,
                batchable=True,
                reply_tokens=40,
            )
    return None


def _dry_run_method(
    method: Any,
    source: Any,
    opts: RunOptions,
    size: Any,
    filters: list[str] | None = None,
    filter_options: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Any method's dry run: per stage the first prompt, the expected requests and cost, and
    an upper bound, each stage priced by the engine of its role (--response-engine,
    --judge-engine); builds no client and needs no key."""
    import math

    from instructgen.engine_contract import Usage
    from instructgen.engines import engine_class
    from instructgen.tokens import expected_prompt_tokens, prompt_tokens

    cls = engine_class(opts.engine_name)
    cls.check_options(dict(opts.engine_options))
    model = opts.model or cls.default_model
    stages = method.estimate(source, size, chat=cls.kind == "chat")
    judging = _judge_estimate(source, size, filters, filter_options, cls.kind == "chat")
    if judging is not None:
        stages.append(judging)
    rows = []
    expected_cost: float | None = 0.0
    max_cost: float | None = 0.0
    per_engine: dict[str, dict[str, Any]] = {}
    for e in stages:
        name, role_model = opts.role_model(e.role)
        ecls = engine_class(name)
        emodel = role_model or ecls.default_model
        price = ecls.model_price(emodel)
        count = ecls.token_counter(emodel)
        reply = e.reply_tokens if e.reply_tokens is not None else e.request.max_tokens // 2
        n_exp = e.expected
        n_max = e.upper if e.upper is not None else math.ceil(e.expected)
        p = price
        if p is not None and opts.batch and e.batchable:
            from instructgen.batching import batch_price

            p = batch_price(p)
        exp_usage = Usage(
            round(n_exp * expected_prompt_tokens(e.request, count)), round(n_exp * reply)
        )
        max_usage = Usage(n_max * prompt_tokens(e.request), n_max * e.request.max_tokens)
        key = f"{ecls.name}:{emodel}"
        mine = per_engine.setdefault(
            key, {"roles": [], "expected_requests": 0.0, "expected_cost_usd": 0.0}
        )
        if e.role not in mine["roles"]:
            mine["roles"].append(e.role)
        mine["expected_requests"] = round(mine["expected_requests"] + n_exp, 2)
        if p is None:
            expected_cost = max_cost = mine["expected_cost_usd"] = None
        elif expected_cost is not None and max_cost is not None:
            expected_cost += p.cost(exp_usage)
            max_cost += p.cost(max_usage)
            mine["expected_cost_usd"] = round(mine["expected_cost_usd"] + p.cost(exp_usage), 6)
        rows.append(
            {
                "stage": e.stage,
                "role": e.role,
                "engine": key,
                "expected_requests": round(n_exp, 2),
                "upper_bound": e.upper,
                "batchable": e.batchable,
                "expected_prompt_tokens": exp_usage.prompt_tokens,
                "expected_completion_tokens": exp_usage.completion_tokens,
            }
        )
    total = sum(r["expected_requests"] for r in rows)
    summary = {
        "engine": cls.name,
        "model": model,
        "kind": cls.kind,
        "method": method.name,
        "input": source.kind,
        "num_instructions_for_finetuning": size.n,
        "requests": {**{r["stage"]: r["expected_requests"] for r in rows}, "total": total},
        "stages": rows,
        "engines": per_engine,
        "batch": opts.batch,
        "prompts_per_request": prompts_per_request(cls, opts),
        "expected_cost_usd": None if expected_cost is None else round(expected_cost, 6),
        "max_cost_usd": None if max_cost is None else round(max_cost, 4),
        "first_prompts": {e.stage: e.request.as_prompt() for e in stages},
    }
    if opts.as_json:
        emit_json({"ok": True, "dry_run": True, **summary})
        return
    for e in stages:
        click.echo(f"-- first {e.stage} prompt " + "-" * 40)
        click.echo(e.request.as_prompt())
    click.echo("-" * 66)
    cost = (
        "unknown (no price for a model)"
        if expected_cost is None or max_cost is None
        else f"expected {format_usd(expected_cost)}, at most {format_usd(max_cost)}"
    )
    if len(per_engine) > 1:
        for key, mine in per_engine.items():
            c = mine["expected_cost_usd"]
            click.echo(
                f"  {key} ({'+'.join(mine['roles'])}): about {mine['expected_requests']:g} "
                f"requests, expected {'unknown' if c is None else format_usd(c)}"
            )
    click.echo(
        f"dry run, nothing sent: {method.name} expects about {total:g} requests to "
        f"{cls.name} ({model}){list_note(prompts_per_request(cls, opts))}"
        f"{' and the other engines above' if len(per_engine) > 1 else ''} "
        f"for {size.n} examples, cost {cost}"
    )


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
    roles: tuple[Engine | None, Engine | None] = (None, None),
    settings: dict[str, dict[str, Any]] | None = None,
) -> tuple[InstructionDataset, dict[str, Any]]:
    from instructgen.dataset import InstructionDataset
    from instructgen.selfinstruct.estimate import expected_requests
    from instructgen.selfinstruct.options import SelfInstructOptions

    cache_dir = opts.cache_dir()
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
            cache=cache_dir if cache_dir else False,
            config=opts.dispatch_config(),
            progress=renderer,
            seed=opts.seed,
            filters=filters,
            filter_options=settings or filter_settings(rouge_tokenizer, allow_non_ascii),
            self_instruct=SelfInstructOptions(
                num_prompt_instructions=num_prompt_instructions, window=window
            ),
            response_engine=roles[0],
            response_config=opts.response_config(),
            judge_engine=roles[1],
            judge_config=opts.judge_config(),
        )
    finally:
        renderer.close()
    return dataset, dataset.run_report


def _roles_json(report: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if report.get("requests", {}).get("by_engine"):
        out["by_engine"] = report["requests"]["by_engine"]
    if report.get("judge"):
        j = report["judge"]
        out["judge"] = {k: j[k] for k in ("rows_judged", "rows_kept", "rows_unjudged", "histogram")}
    return out


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
        "prompts_per_request": prompts_per_request(cls, opts),
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
        f"{cls.name} ({model}){list_note(prompts_per_request(cls, opts))}, "
        f"~{est.prompt_tokens:,} prompt tokens, at most "
        f"{est.max_completion_tokens:,} completion tokens, cost {est.cost_text()}"
    )

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from instructgen.cli._common import emit_json, handles_errors
from instructgen.cli._run import (
    ProgressRenderer,
    RunOptions,
    chosen_filters,
    filter_settings,
    finish_run,
    format_option,
    judge_chosen,
    record_unfinished,
    refuse_unused,
    role_options,
    run_options,
    scan_limits,
    scan_options,
    self_instruct_options,
    size_options,
    spending_summary,
)
from instructgen.errors import ConfigError
from instructgen.money import format_usd

if TYPE_CHECKING:
    from instructgen.documents.stream import DirRunOptions
    from instructgen.engine_contract import Engine, Request

SELF_INSTRUCT_ONLY = (
    "n_examples",
    "num_instructions",
    "num_prompt_instructions",
    "rouge_tokenizer",
    "allow_non_ascii",
    "window",
    "add_filters",
    "drop_filters",
)
"""The options that only a run with --self-instruct uses (parameter names)."""

RESPONSE_FLAGS = (
    "response_engine",
    "response_model",
    "response_base_url",
    "response_concurrency",
    "response_rpm",
    "response_tpm",
)
JUDGE_FLAGS = (
    "judge_engine",
    "judge_model",
    "judge_base_url",
    "judge_concurrency",
    "judge_rpm",
    "judge_tpm",
    "judge_threshold",
)


class _FromDirCommand(click.Command):
    """``from-dir``, whose help lists the options that apply only with --self-instruct in a
    section of their own, instead of saying so on each of them."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows: list[tuple[str, str]] = []
        self_instruct: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                own = param.name in SELF_INSTRUCT_ONLY + RESPONSE_FLAGS
                (self_instruct if own else rows).append(record)
        with formatter.section("Options"):
            formatter.write_dl(rows)
        with formatter.section("Self-Instruct options (only with --self-instruct)"):
            formatter.write_dl(self_instruct)


@click.command("from-dir", cls=_FromDirCommand)
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--samples-per-chunk",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Question/answer pairs asked for each chunk.",
)
@click.option(
    "--self-instruct",
    "use_self_instruct",
    is_flag=True,
    help="Use the question/answer pairs as seed tasks for Self-Instruct.",
)
@click.option(
    "--executor",
    default="local",
    show_default=True,
    help="Where the files are read: local (worker processes here), or an executor plugin's "
    "name (e.g. ray from instructgen-ray: the nodes of a Ray cluster).",
)
@click.option(
    "--executor-address",
    "--ray-address",
    "executor_address",
    default=None,
    help="The executor's cluster address (Ray: HOST:6379 or ray://HOST:10001).",
)
@click.option(
    "--executor-workers",
    type=click.IntRange(min=1),
    default=None,
    help="Workers the executor may use (Ray: the CPUs of the local instance it starts).",
)
@size_options
@self_instruct_options
@scan_options
@format_option
@run_options
@role_options
@handles_errors
def from_dir(
    directory: Path,
    chunk_size: int,
    samples_per_chunk: int,
    use_self_instruct: bool,
    n_examples: int,
    num_instructions: int,
    num_prompt_instructions: int,
    rouge_tokenizer: str,
    allow_non_ascii: bool,
    window: int,
    add_filters: tuple[str, ...],
    drop_filters: tuple[str, ...],
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    fmt: str | None,
    executor: str,
    executor_address: str | None,
    executor_workers: int | None,
    **common: Any,
) -> None:
    """Generate a dataset from the documents in DIRECTORY (25 formats; bad files are skipped
    and listed in run.json). Rerunning resumes; unchanged files are not read again."""
    from instructgen import plugins
    from instructgen.documents.stream import DirRunOptions
    from instructgen.limits import check_dataset_size
    from instructgen.outdir import lock_output
    from instructgen.runs import get_executor
    from instructgen.selfinstruct.options import SelfInstructOptions

    opts = RunOptions.pop_from(common)
    filters = None
    if use_self_instruct:  # a size --num-instructions can never reach: exit 2 at once
        check_dataset_size(
            n_examples, num_instructions, SelfInstructOptions().max_instances_per_task
        )
        filters = chosen_filters(add_filters, drop_filters)  # unknown name: exit 2
    else:  # a Self-Instruct option without --self-instruct does nothing: exit 2
        _refuse_roles(RESPONSE_FLAGS)
        refuse_unused(click.get_current_context(), SELF_INSTRUCT_ONLY, "--self-instruct")
    if judge_chosen(filters) or _given(JUDGE_FLAGS):
        raise ConfigError(
            "from-dir does not run the llm-judge filter: judge its dataset with `instructgen "
            "judge OUT`, or run `instructgen generate DIR --method document-qa --filter llm-judge`"
        )
    if fmt is not None:
        plugins.exporters().get(fmt)
    executor_options: dict[str, Any] = {}
    if executor_address:
        executor_options["address"] = executor_address
    if executor_workers:
        executor_options["workers"] = executor_workers
    if executor != "local":
        plugins.executors().get(executor)  # unknown executor: exit 2 before any work
    run = DirRunOptions(
        use_self_instruct=use_self_instruct,
        chunk_size=chunk_size,
        num_samples_per_chunk=samples_per_chunk,
        num_instructions=num_instructions,
        num_instructions_for_finetuning=n_examples,
        out=opts.out,
        cache=not opts.no_cache,
        config=opts.dispatch_config(),
        include=include,
        exclude=exclude,
        limits=scan_limits(common),
        seed=opts.seed,
        executor=executor,
        executor_options=executor_options or None,
        filters=filters,
        filter_options=(
            filter_settings(rouge_tokenizer, allow_non_ascii) if use_self_instruct else None
        ),
        self_instruct=(
            SelfInstructOptions(num_prompt_instructions=num_prompt_instructions, window=window)
            if use_self_instruct
            else None
        ),
    )
    if opts.dry_run:
        _dry_run(directory, run, opts)
        return
    if not directory.exists():  # exit 2 before --out is made
        raise ConfigError(f"{directory}: no such file or directory")
    out = opts.out or Path(f"{directory.name or 'docs'}-dataset")
    engine = opts.build_engine()  # a missing key or extra: exit 2 before --out is made
    # an unreachable cluster too (the run closes the executor when it ends)
    runner = get_executor(executor, executor_options)
    try:
        # refuse a folder of other files, or one another run is writing, before anything is read
        click.get_current_context().call_on_close(lock_output(out, what="--out").release)
    except BaseException:
        runner.close()
        raise
    # Self-Instruct's instance requests on the response engine, under its own limits
    roles: dict[str, Any] = (
        {
            "response_engine": opts.role_engine("answers"),
            "response_config": opts.response_config(),
        }
        if use_self_instruct
        else {}
    )
    _run(directory, engine, replace(run, out=out, executor=runner, **roles), opts, fmt)


def _given(names: tuple[str, ...]) -> list[str]:
    """The flags among ``names`` (parameter names) given on the command line."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    return [
        "/".join(p.opts)
        for p in ctx.command.params
        if p.name in names
        and ctx.get_parameter_source(p.name) not in (None, ParameterSource.DEFAULT)
    ]


def _refuse_roles(names: tuple[str, ...]) -> None:
    """--response-* without --self-instruct: exit 2, one line saying why."""
    given = _given(names)
    if given:
        raise ConfigError(
            f"{', '.join(given)}: document Q/A asks for questions and answers in one request "
            "(no separate answer request); add --self-instruct to send its instance requests "
            "to the response engine"
        )


def _run(
    directory: Path, engine: Engine, run: DirRunOptions, opts: RunOptions, fmt: str | None
) -> None:
    """The run itself, then its end (``finish_run``): the summary, the short chunks."""
    from instructgen.dataset import InstructionDataset
    from instructgen.documents.qa import RepliesReport
    from instructgen.runs import run_from_dir

    assert run.out is not None
    out = Path(run.out)
    renderer = ProgressRenderer(enabled=not opts.as_json)
    try:
        dataset = InstructionDataset.from_run(
            asyncio.run(run_from_dir(directory, engine, run, renderer))
        )
    except BaseException:
        renderer.close()
        record_unfinished(out, renderer)  # what it paid stays in the run's totals
        raise
    renderer.close()
    replies = RepliesReport.from_dict(dataset.run_report.get("question_answer_replies"))
    short = len(replies.short)

    def summary(report: dict[str, Any], exported: str | None) -> dict[str, Any]:
        return {
            "ok": len(dataset) > 0,
            "examples": len(dataset),
            "out": str(out),
            **report["extraction"],
            "requests": report["requests"],
            "totals": report["totals"],
            "unparsed_replies": replies.unparsed_replies,
            "short_chunks": short,
        }

    def line(report: dict[str, Any], exported: str | None) -> str:
        ex = report["extraction"]
        return (
            f"wrote {len(dataset)} examples to {out} from {ex['read']} files "
            f"({ex['skipped']} skipped, see run.json), {ex['chunks']} chunks; "
            f"{replies.unparsed_replies} replies unparsed, "
            f"{replies.follow_up_requests} follow-ups, {short} chunks short; "
            f"{spending_summary(report)}"
        )

    unreadable = ""
    if replies.unparsed_replies:
        unreadable = (
            f" {replies.unparsed_replies} of {replies.replies} replies held no "
            "question/answer pairs (excerpts: run.json question_answer_replies.short_chunks);"
        )
    finish_run(
        dataset,
        out,
        fmt,
        as_json=opts.as_json,
        summary=summary,
        line=line,
        empty=f"{unreadable.strip()} see run.json".strip() if unreadable else "see run.json",
    )
    if short and not opts.as_json:
        click.echo(
            f"warning: {short} chunks gave fewer pairs than asked;{unreadable} rerun the same "
            "command to ask again for what is missing",
            err=True,
        )


def _dry_run(directory: Path, run: DirRunOptions, opts: RunOptions) -> None:
    """What the run would send, read from the folder without the extraction cache: the first
    prompt, the requests, tokens and the most it can cost (and Self-Instruct's estimate on
    top); builds no client and needs no key."""
    from instructgen.dispatch import estimate
    from instructgen.documents.discovery import discover_files
    from instructgen.documents.qa import qa_request, structured_output
    from instructgen.documents.stream import Tally, stream_chunks
    from instructgen.engines import engine_class

    cls = engine_class(opts.engine_name)
    cls.check_options(dict(opts.engine_options))  # a bad -o exits 2 in a dry run too
    found = discover_files(
        directory,
        run.limits,
        include=run.include,
        exclude=run.exclude,
        skip_dirs=[Path(run.out)] if run.out is not None else [],
    )
    tally = Tally()
    first: list[str] = []

    def requests() -> Iterator[Request]:
        # streamed: one file's chunks at a time, never the corpus (the extraction cache is
        # not used: a dry run leaves nothing behind)
        for _, chunks in stream_chunks(
            found, run.limits, None, chunk_size=run.chunk_size, tally=tally
        ):
            for c in chunks:
                req = qa_request(
                    c.text,
                    rel=c.rel,
                    index=c.index,
                    total=c.total,
                    n=run.num_samples_per_chunk,
                    chat=cls.kind == "chat",
                    structured=structured_output(cls),
                )
                if not first:
                    first.append(req.as_prompt())
                yield req

    model = opts.model or cls.default_model
    est = estimate(requests(), cls.model_price(model))
    payload: dict[str, Any] = {
        "ok": True,
        "dry_run": True,
        **tally.summary(),
        "requests": est.requests,
        "prompt_tokens": est.prompt_tokens,
        "max_completion_tokens": est.completion_tokens,
        "max_cost_usd": None if est.cost is None else round(est.cost, 4),
        "skipped_files": tally.skipped,
        "first_prompt": first[0] if first else None,
    }
    si = None
    if run.use_self_instruct:
        from instructgen.selfinstruct.estimate import estimate_self_instruct

        assert run.self_instruct is not None
        prompt_instructions = run.self_instruct.num_prompt_instructions
        # The questions that become the seed tasks are not known before the run: estimated
        # with questions of the paper's average instruction length (16 words), as many as
        # the first bootstrap prompt lists (not one per pair: a large corpus has 10^5).
        pairs = max(1, est.requests * run.num_samples_per_chunk)
        questions = [
            f"What does part {i} of the document say about its main subject, and why "
            "does that matter?"
            for i in range(1, min(pairs, prompt_instructions) + 1)
        ]
        si = estimate_self_instruct(
            cls,
            model,
            questions,
            num_instructions=run.num_instructions,
            num_prompt_instructions=prompt_instructions,
            classification_share=0.0,
            seed=run.seed,
            batch=opts.batch,
        )
        payload["self_instruct"] = si.to_dict()
        costs = [payload["max_cost_usd"], si.max_cost]
        payload["total"] = {
            "requests": est.requests + si.total_requests,
            "max_cost_usd": None if None in costs else round(sum(costs), 4),
        }
    if opts.as_json:
        emit_json(payload)
        return
    if first:
        click.echo(first[0][:2000])
    bound = "unknown" if est.cost is None else f"at most {format_usd(est.cost)}"
    click.echo(
        f"dry run, nothing sent: {est.requests} requests for "
        f"{payload['chunks']} chunks of {payload['read']} files "
        f"({payload['skipped']} skipped), cost {bound}"
    )
    if si is not None:
        click.echo(
            f"then Self-Instruct on the pairs: about {si.total_requests} requests, "
            f"cost {si.cost_text()}"
        )

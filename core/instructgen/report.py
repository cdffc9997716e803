"""A self-contained HTML report of a dataset: inline SVG charts, no scripts, no network.

Charts: instruction length histogram; nearest-neighbour ROUGE-L histogram (each instruction's
highest ROUGE-L F against the seed instructions when a tasks file is given, as in Figure 3 of the
Self-Instruct paper, otherwise against the other instructions of the dataset); most common
leading words (the verb, for imperative instructions); drops per filter; tokens and cost; and
examples per source file for directory runs.
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import instructgen.plugins as plugins
from instructgen.atomic import write_atomic
from instructgen.dataset import InstructionDataset
from instructgen.errors import DatasetError
from instructgen.money import format_usd
from instructgen.run_totals import invocation_figures
from instructgen.tasks import load_tasks

__all__ = ["build_report", "write_report"]

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#1f2328;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin:0 0 .6rem}
.sub{color:#59636e;margin-bottom:1.5rem}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:1.2rem}
.card{border:1px solid #d1d9e0;border-radius:8px;padding:1rem 1.2rem;background:#fff}
.kpis{display:flex;gap:1.5rem;flex-wrap:wrap;margin-bottom:1.2rem}
.kpi{border:1px solid #d1d9e0;border-radius:8px;padding:.6rem 1rem;min-width:130px}
.kpi b{display:block;font-size:1.4rem}
.kpi small{display:block;color:#59636e;font-size:12px}
table{border-collapse:collapse;width:100%;font-size:13px}
td,th{border-bottom:1px solid #eee;padding:.3rem .4rem;text-align:left;vertical-align:top}
.empty{color:#59636e;font-style:italic}
svg text{font:11px system-ui,sans-serif;fill:#1f2328}
"""


def _nice_step(span: float, target: int, *, nearest: bool = False) -> float:
    """A round step (1, 2 or 5 times a power of ten) that cuts ``span`` into at most
    ``target`` parts, or (``nearest``) into about ``target`` parts, as for axis ticks."""
    raw = max(span, 1e-12) / max(1, target)
    mag = 10 ** math.floor(math.log10(raw))
    if nearest:
        f = raw / mag
        return float(mag * (1 if f < 1.5 else 2 if f < 3 else 5 if f < 7 else 10))
    for m in (1, 2, 5, 10):
        if m * mag >= raw * 0.999:
            return float(m * mag)
    return float(10 * mag)


def _num(value: float) -> str:
    """A tick label: ``12``, ``0.2``, ``1,500`` (no ``6.2`` from a float's noise)."""
    value = round(value, 9)
    return f"{value:,.0f}" if value == int(value) else f"{value:g}"


def _histogram(
    values: Sequence[float],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    color: str,
    integers: bool = False,
    lo: float = 0.0,
    hi: float | None = None,
    bins: int = 15,
) -> str:
    """A histogram whose bins and ticks are round numbers of the data's own unit (whole words
    for word counts), with both axes labelled: ``xlabel`` what a bar's range measures,
    ``ylabel`` what the bars count."""
    if not values:
        return f'<div class="card"><h2>{html.escape(title)}</h2><p class="empty">no data</p></div>'
    top_value = max(values) if hi is None else hi
    width = _nice_step(top_value - lo, bins)
    if integers:
        width = max(1.0, math.ceil(width))
        top_value += 1  # the largest value gets a bar of its own
    nbins = max(1, math.ceil((top_value - lo) / width - 1e-9))
    hi = lo + nbins * width
    # whole numbers: bar k holds the values k*width ... (k+1)*width - 1, and a tick at value v
    # stands under the middle of v's place on the axis
    shift = 0.5 if integers else 0.0
    counts = [0] * nbins
    for v in values:
        counts[min(nbins - 1, max(0, int((v - lo) / width + 1e-9)))] += 1
    ystep = max(1.0, _nice_step(max(counts), 4))
    ytop = ystep * math.ceil(max(counts) / ystep)
    w, h, left, right, top, bottom = 460, 240, 46, 12, 12, 40
    plot_w, plot_h = w - left - right, h - top - bottom
    bw = plot_w / nbins

    def x_at(v: float) -> float:
        return left + (v - lo + shift) / (hi - lo) * plot_w

    def y_at(c: float) -> float:
        return top + plot_h - plot_h * c / ytop

    grid, bars = [], []
    for k in range(int(ytop / ystep) + 1):
        y = y_at(k * ystep)
        grid.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{w - right}" y2="{y:.1f}" stroke="#e6e9ec"/>'
            f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end">{_num(k * ystep)}</text>'
        )
    for i, c in enumerate(counts):
        a, b = lo + i * width, lo + (i + 1) * width
        if integers:
            span = _num(a) if width == 1 else f"{_num(a)}–{_num(b - 1)}"
        else:
            span = f"{_num(a)}–{_num(b)}"
        x, y = left + i * bw, y_at(c)
        bars.append(
            f'<rect x="{x + 0.5:.1f}" y="{y:.1f}" width="{max(bw - 1, 1):.1f}" '
            f'height="{top + plot_h - y:.1f}" fill="{color}"><title>'
            f"{html.escape(f'{xlabel} {span}: {c} {ylabel}')}</title></rect>"
        )
    tstep = _nice_step(hi - lo, 6, nearest=True)
    if integers:
        tstep = max(1.0, tstep)
    ticks = []
    k = 0
    while lo + k * tstep <= hi - 2 * shift + 1e-9:
        v = lo + k * tstep
        ticks.append(
            f'<line x1="{x_at(v):.1f}" y1="{top + plot_h}" x2="{x_at(v):.1f}" '
            f'y2="{top + plot_h + 4}" stroke="#888"/>'
            f'<text x="{x_at(v):.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
            f"{_num(v)}</text>"
        )
        k += 1
    svg = (
        f'<svg viewBox="0 0 {w} {h}" width="100%" role="img" '
        f'aria-label="{html.escape(title)}">{"".join(grid)}{"".join(bars)}'
        f'<line x1="{left}" y1="{top + plot_h}" x2="{w - right}" y2="{top + plot_h}" '
        f'stroke="#888"/>{"".join(ticks)}'
        f'<text x="{left + plot_w / 2}" y="{h - 4}" text-anchor="middle">'
        f"{html.escape(xlabel)}</text>"
        f'<text transform="translate(11 {top + plot_h / 2}) rotate(-90)" '
        f'text-anchor="middle">{html.escape(ylabel)}</text></svg>'
    )
    return f'<div class="card"><h2>{html.escape(title)}</h2>{svg}</div>'


def _bars(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    color: str,
    unit: str,
    fmt: str = "{:,.0f}",
) -> str:
    """Horizontal bars, each with its value; ``unit`` says what the values count."""
    if not items:
        return f'<div class="card"><h2>{html.escape(title)}</h2><p class="empty">none</p></div>'
    width, row, left = 460, 20, 170
    height = row * len(items) + 28
    top = max(v for _, v in items) or 1
    rows = []
    for i, (label, value) in enumerate(items):
        w = (width - left - 60) * value / top
        y = 5 + i * row
        rows.append(
            f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">'
            f"{html.escape(label[:28])}</text>"
            f'<rect x="{left}" y="{y + 2}" width="{max(w, 1):.1f}" height="{row - 6}" '
            f'fill="{color}"><title>{html.escape(label)}: {fmt.format(value)}</title></rect>'
            f'<text x="{left + w + 4:.1f}" y="{y + 13}">{fmt.format(value)}</text>'
        )
    svg = (
        f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{html.escape(title)}">{"".join(rows)}'
        f'<text x="{left}" y="{height - 6}" fill="#59636e">{html.escape(unit)}</text></svg>'
    )
    return f'<div class="card"><h2>{html.escape(title)}</h2>{svg}</div>'


def _nearest_rouge(instructions: list[str], seeds: list[str]) -> tuple[list[float], str]:
    """Each instruction's highest ROUGE-L F, through the ROUGE filter's public ``max_score``:
    against the seeds when given, else against the instructions before it."""
    try:
        rouge_cls = plugins.filters().get("rouge")
    except Exception:
        return [], "no ROUGE-L filter plugin is installed"
    f = rouge_cls(threshold=0.0)  # threshold 0: no pruning, exact maxima
    max_score = getattr(f, "max_score", None)
    if max_score is None:
        return [], f"the {rouge_cls.__name__} filter has no max_score()"
    f.prime(seeds)
    if seeds:
        return [max_score(i) for i in instructions], "against the seed instructions"
    scores: list[float] = []
    for inst in instructions:
        scores.append(max_score(inst))
        f.keep(inst)
    return scores, "against the instructions before it in the dataset"


def _classified(rows: Sequence[dict[str, Any]]) -> int:
    return len({r["instruction"] for r in rows if r.get("is_classification")})


def build_report(
    rows: Sequence[dict[str, Any]],
    run: dict[str, Any],
    *,
    title: str = "instructgen dataset",
    seeds: Sequence[str] = (),
) -> str:
    instructions = list(dict.fromkeys(r["instruction"] for r in rows))
    lengths = [len(i.split()) for i in instructions]
    nn, nn_note = _nearest_rouge(instructions, list(seeds))
    verbs = Counter(i.split()[0].strip(".,:;!?\"'").lower() for i in instructions if i.split())
    si = run.get("self_instruct") or run  # a directory run with Self-Instruct keeps it apart
    drops = si.get("filter_drops") or {}
    prep = si.get("preparation_drops") or {}
    sources = Counter(r.get("source") or "" for r in rows)
    skipped = run.get("skipped_files") or []
    # The counts the command line printed, from run.json (the rows hold only the examples
    # chosen for the dataset, not every instruction generated).
    generated = si.get("instructions_generated")
    classification = si.get("classification_instructions")
    this = invocation_figures(run)
    totals = run.get("totals") or this
    resumed = totals["invocations"] > 1
    in_rows = f"{len(instructions):,} of them in the examples"
    kpis = [
        ("examples", f"{len(rows):,}", ""),
        (
            "instructions generated" if generated is not None else "instructions",
            f"{generated if generated is not None else len(instructions):,}",
            in_rows if generated is not None else "",
        ),
        (
            "classification instructions",
            f"{classification if classification is not None else _classified(rows):,}",
            "" if classification is not None else "in the examples",
        ),
        (
            "tokens" + (" in all" if resumed else ""),
            f"{totals['prompt_tokens'] + totals['completion_tokens']:,}",
            f"{this['prompt_tokens'] + this['completion_tokens']:,} this time" if resumed else "",
        ),
        (
            "cost" + (" in all" if resumed else ""),
            format_usd(totals["cost_usd"]),
            f"{format_usd(this['cost_usd'])} this time" if resumed else "",
        ),
        (
            "requests paid" + (" in all" if resumed else ""),
            f"{totals['requests_paid']:,}",
            f"{this['requests_paid']:,} this time, over {totals['invocations']} runs"
            if resumed
            else "",
        ),
    ]
    cost_title = (
        f"Tokens (cost {format_usd(totals['cost_usd'])} in all, "
        f"{format_usd(this['cost_usd'])} this time)"
        if resumed
        else f"Tokens (cost {format_usd(totals['cost_usd'])})"
    )
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<div class='sub'>engine {html.escape(str(run.get('engine', '?')))} · model "
        f"{html.escape(str(run.get('model', '?')))} · pipeline "
        f"{html.escape(str(run.get('pipeline', '?')))}"
        + (f" · {totals['invocations']} runs (resumed)" if resumed else "")
        + "</div>",
        "<div class='kpis'>"
        + "".join(
            f"<div class='kpi'><b>{v}</b>{html.escape(k)}"
            + (f"<small>{html.escape(note)}</small>" if note else "")
            + "</div>"
            for k, v, note in kpis
        )
        + "</div>",
        "<div class='grid'>",
        _histogram(
            lengths,
            title="Instruction length",
            xlabel="words per instruction",
            ylabel="instructions",
            color="#0969da",
            integers=True,
        ),
        _histogram(
            nn,
            lo=0.0,
            hi=1.0,
            bins=10,
            title=f"Nearest-neighbour ROUGE-L ({nn_note})",
            xlabel="highest ROUGE-L F",
            ylabel="instructions",
            color="#8250df",
        ),
        _bars(
            [(v, float(c)) for v, c in verbs.most_common(15)],
            title="Most common leading words",
            color="#1a7f37",
            unit="instructions starting with the word",
        ),
        _bars(
            sorted(((k, float(v)) for k, v in {**drops, **prep}.items()), key=lambda kv: -kv[1]),
            title="Drops per filter",
            color="#cf222e",
            unit="instructions or instances dropped",
        ),
        _bars(
            [
                ("prompt tokens", float(totals["prompt_tokens"])),
                ("completion tokens", float(totals["completion_tokens"])),
            ],
            title=cost_title,
            color="#bf8700",
            unit="tokens" + (f", in all over {totals['invocations']} runs" if resumed else ""),
        ),
    ]
    if any(s and s != "self-instruct" for s in sources):
        parts.append(
            _bars(
                [(s or "?", float(c)) for s, c in sources.most_common(25)],
                title="Examples per source file",
                color="#0550ae",
                unit="examples",
            )
        )
    judge = run.get("judge")
    if isinstance(judge, dict) and judge.get("histogram"):
        # every row the judge rated, kept or not (the dataset holds only those kept)
        parts.append(
            _bars(
                [
                    (f"score {k}" if k != "unjudged" else k, float(v))
                    for k, v in judge["histogram"].items()
                ],
                title=(
                    f"Judge scores ({judge.get('engine')}:{judge.get('model')}; kept "
                    f"{judge.get('rows_kept', 0):,} of {judge.get('rows_judged', 0):,} rated, "
                    f"threshold {judge.get('threshold')})"
                ),
                color="#9a6700",
                unit="rows rated",
            )
        )
    by_engine = (run.get("requests") or {}).get("by_engine") or []
    if by_engine:
        parts.append(
            _bars(
                [
                    (f"{e['model']} ({'+'.join(e['roles'])})", float(e["cost_usd"]))
                    for e in by_engine
                ],
                title="Cost per engine (this time)",
                color="#bf8700",
                unit="US dollars",
                fmt="{:,.4f}",
            )
        )
    parts.append("</div>")
    if skipped:
        parts.append(
            "<div class='card' style='margin-top:1.2rem'><h2>Skipped files</h2><table>"
            "<tr><th>file</th><th>reason</th></tr>"
            + "".join(
                f"<tr><td>{html.escape(s['file'])}</td>"
                f"<td>{html.escape(str(s['reason']))}</td></tr>"
                for s in skipped
            )
            + "</table></div>"
        )
    parts.append(
        "<div class='card' style='margin-top:1.2rem'><h2>Examples</h2><table>"
        "<tr><th>instruction</th><th>input</th><th>output</th></tr>"
        + "".join(
            f"<tr><td>{html.escape(r['instruction'][:300])}</td>"
            f"<td>{html.escape(r['text'][:200])}</td>"
            f"<td>{html.escape(r['target'][:300])}</td></tr>"
            for r in rows[:20]
        )
        + "</table></div></body></html>"
    )
    return "".join(parts)


def write_report(
    dataset_dir: str | Path, out: str | Path | None = None, *, tasks: str | Path | None = None
) -> Path:
    """Write ``report.html`` for the dataset saved in ``dataset_dir`` (with its run.json)."""
    dataset_dir = Path(dataset_dir)
    ds = InstructionDataset.load(dataset_dir)
    run_path = dataset_dir / "run.json"
    run = ds.run_report
    if run_path.is_file():
        run = {**run, **json.loads(run_path.read_text(encoding="utf-8"))}
    seeds: list[str] = []
    if tasks is not None:
        seeds = [t.instruction for t in load_tasks(tasks)]
    target = Path(out) if out is not None else dataset_dir / "report.html"
    if target.is_dir():  # replacing a folder by a file would delete what it holds
        raise DatasetError(
            f"{target} is a folder; name the file to write, e.g. {target}/report.html"
        )
    return write_atomic(
        target, build_report(ds.rows, run, title=f"instructgen: {dataset_dir.name}", seeds=seeds)
    )

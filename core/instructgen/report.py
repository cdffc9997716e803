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
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import instructgen.plugins as plugins
from instructgen.atomic import write_atomic
from instructgen.dataset import InstructionDataset
from instructgen.errors import DatasetError
from instructgen.money import format_usd
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
table{border-collapse:collapse;width:100%;font-size:13px}
td,th{border-bottom:1px solid #eee;padding:.3rem .4rem;text-align:left;vertical-align:top}
.empty{color:#59636e;font-style:italic}
svg text{font:11px system-ui,sans-serif;fill:#1f2328}
"""


def _histogram(
    values: Sequence[float], bins: int, lo: float, hi: float, *, title: str, xlabel: str, color: str
) -> str:
    if not values:
        return f'<div class="card"><h2>{html.escape(title)}</h2><p class="empty">no data</p></div>'
    width, height, pad = 460, 220, 36
    step = (hi - lo) / bins or 1.0
    counts = [0] * bins
    for v in values:
        i = min(bins - 1, max(0, int((v - lo) / step)))
        counts[i] += 1
    top = max(counts) or 1
    bw = (width - 2 * pad) / bins
    bars = []
    for i, c in enumerate(counts):
        h = (height - 2 * pad) * c / top
        x = pad + i * bw
        y = height - pad - h
        label = f"{lo + i * step:.2g}–{lo + (i + 1) * step:.2g}: {c}"
        bars.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw - 1:.1f}" height="{h:.1f}" '
            f'fill="{color}"><title>{html.escape(label)}</title></rect>'
        )
    ticks = "".join(
        f'<text x="{pad + i * bw:.1f}" y="{height - pad + 14}" text-anchor="middle">'
        f"{lo + i * step:.2g}</text>"
        for i in range(0, bins + 1, max(1, bins // 5))
    )
    svg = (
        f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{html.escape(title)}">'
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        f'stroke="#888"/>{"".join(bars)}{ticks}'
        f'<text x="{width / 2}" y="{height - 4}" text-anchor="middle">'
        f"{html.escape(xlabel)}</text>"
        f'<text x="{pad}" y="{pad - 10}">max {top}</text></svg>'
    )
    return f'<div class="card"><h2>{html.escape(title)}</h2>{svg}</div>'


def _bars(
    items: Sequence[tuple[str, float]], *, title: str, color: str, fmt: str = "{:,.0f}"
) -> str:
    if not items:
        return f'<div class="card"><h2>{html.escape(title)}</h2><p class="empty">none</p></div>'
    width, row, left = 460, 20, 170
    height = row * len(items) + 10
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
        f'aria-label="{html.escape(title)}">{"".join(rows)}</svg>'
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
    drops = run.get("filter_drops") or (run.get("self_instruct") or {}).get("filter_drops") or {}
    prep = run.get("preparation_drops") or {}
    req = run.get("requests") or {}
    sources = Counter(r.get("source") or "" for r in rows)
    skipped = run.get("skipped_files") or []
    kpis = [
        ("examples", f"{len(rows):,}"),
        ("instructions", f"{len(instructions):,}"),
        ("classification", f"{sum(1 for r in rows if r.get('is_classification')):,}"),
        ("tokens", f"{req.get('prompt_tokens', 0) + req.get('completion_tokens', 0):,}"),
        ("cost", format_usd(req.get("cost_usd", 0))),
        ("requests sent", f"{req.get('requests_sent', 0):,}"),
    ]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<div class='sub'>engine {html.escape(str(run.get('engine', '?')))} · model "
        f"{html.escape(str(run.get('model', '?')))} · pipeline "
        f"{html.escape(str(run.get('pipeline', '?')))}</div>",
        "<div class='kpis'>"
        + "".join(f"<div class='kpi'><b>{v}</b>{html.escape(k)}</div>" for k, v in kpis)
        + "</div>",
        "<div class='grid'>",
        _histogram(
            lengths,
            15,
            0,
            max(lengths or [1]) + 1,
            title="Instruction length",
            xlabel="words per instruction",
            color="#0969da",
        ),
        _histogram(
            nn,
            10,
            0.0,
            1.0,
            title=f"Nearest-neighbour ROUGE-L ({nn_note})",
            xlabel="highest ROUGE-L F",
            color="#8250df",
        ),
        _bars(
            [(v, float(c)) for v, c in verbs.most_common(15)],
            title="Most common leading words",
            color="#1a7f37",
        ),
        _bars(
            sorted(((k, float(v)) for k, v in {**drops, **prep}.items()), key=lambda kv: -kv[1]),
            title="Drops per filter",
            color="#cf222e",
        ),
        _bars(
            [
                ("prompt tokens", float(req.get("prompt_tokens", 0))),
                ("completion tokens", float(req.get("completion_tokens", 0))),
            ],
            title=f"Tokens (cost {format_usd(req.get('cost_usd', 0))})",
            color="#bf8700",
        ),
    ]
    if any(s and s != "self-instruct" for s in sources):
        parts.append(
            _bars(
                [(s or "?", float(c)) for s, c in sources.most_common(25)],
                title="Examples per source file",
                color="#0550ae",
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

"""Memory and time to first request of a streamed ``instructgen from-dir`` over a large generated
corpus, against the local OpenAI-format server (benchmarks/_server.py). Prints JSON.

    python benchmarks/stream.py --case text    # 200 text files of 1.2 MB (240 MB)
    python benchmarks/stream.py --case mixed   # >= 1 GB of text, HTML and docx
    python benchmarks/stream.py --case text --dry-run
    python benchmarks/stream.py --case text --executor ray   # the same on a local Ray instance
    python benchmarks/stream.py --case text --compare        # local, then Ray: ratios, dataset

The corpus is generated under ``--work`` (default ``/tmp/instructgen-stream-bench``; reused
when present). The CLI runs in its own process; every process of its tree (the main process and
the extraction workers) is sampled through ``/proc`` every 0.1 s for its resident memory, and
``getrusage(RUSAGE_CHILDREN)`` after it ends gives the largest peak of any of them (the
kernel's own count, so short-lived workers between two samples are counted too). The server
writes the time of the first request it receives; ``first_request_s`` is counted from the
start of the CLI process.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MB = 1024 * 1024
SUMMARY_KEYS = ("examples", "files", "read", "skipped", "characters", "chunks", "requests")
SUMMARY_KEYS += ("prompt_tokens",)  # a dry run's estimate
REPLY = "\n".join(
    f"Q{i}: What does the excerpt say about topic {i}?\nA{i}: It describes topic {i} in detail."
    for i in range(1, 6)
)


def _paragraphs(seed: int) -> list[str]:
    rng = random.Random(seed)
    words = [f"{rng.choice('bcdfghklmnprstvw')}{rng.choice('aeiou')}{i}" for i in range(8000)]
    return [
        (" ".join(rng.choice(words) for _ in range(rng.randint(40, 160))) + ".").capitalize()
        for _ in range(3000)
    ]


def _text_of(paras: list[str], rng: random.Random, size: int) -> list[str]:
    out, total = [], 0
    while total < size:
        p = rng.choice(paras)
        out.append(p)
        total += len(p) + 2
    return out


_CT = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.wordprocessingml.document.main+xml"/></Types>'
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="word/document.xml"/></Relationships>'
)
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def _docx(path: Path, paras: list[str]) -> None:
    body = "".join(f"<w:p><w:r><w:t>{escape(p)}</w:t></w:r></w:p>" for p in paras)
    doc = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="{_W}">'
        f"<w:body>{body}</w:body></w:document>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("[Content_Types].xml", _CT)
        z.writestr("_rels/.rels", _RELS)
        z.writestr("word/document.xml", doc)


def make_corpus(root: Path, case: str) -> dict[str, int]:
    """``text``: 200 text files of 1.2 MB; ``mixed``: 450 text files and 350 HTML pages of
    1.2 MB and 150 docx files of 1.2 MB of text (compressed), over 1 GB in all."""
    marker = root / ".complete"
    if not marker.exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        paras = _paragraphs(11)
        rng = random.Random(5)
        plan = {"text": (200, 0, 0), "mixed": (450, 350, 150)}[case]
        size = int(1.2 * 1000 * 1000)
        for i in range(plan[0]):
            (root / f"t{i:04d}.txt").write_text("\n\n".join(_text_of(paras, rng, size)))
        for i in range(plan[1]):
            body = "\n".join(
                f"<h2>Section {k}</h2>" if k % 20 == 0 else f"<p>{escape(p)}</p>"
                for k, p in enumerate(_text_of(paras, rng, size))
            )
            (root / f"h{i:04d}.html").write_text(
                f"<!doctype html><html><head><title>Page {i}</title></head>"
                f"<body><nav>Home | About</nav>{body}</body></html>"
            )
        for i in range(plan[2]):
            _docx(root / f"d{i:04d}.docx", _text_of(paras, rng, size))
        marker.write_text("")
    files = [p for p in root.iterdir() if not p.name.startswith(".")]
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    stat = fh.read()
                ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _rss(pid: int) -> tuple[int, int]:
    """Resident size and its anonymous part (heap: what is not pages of mapped files, such as
    the memory-mapped dataset, or of shared libraries)."""
    rss = anon = 0
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith(b"RssAnon:"):
                    anon = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return rss, anon


def run(
    corpus: Path,
    out: Path,
    *,
    chunk_size: int,
    dry_run: bool,
    concurrency: int,
    executor: str = "local",
    workers: int = 2,
    latency: float = 0.0,
    samples_per_chunk: int = 5,
) -> dict:
    server_first = Path(tempfile.mkstemp(prefix="first-request-")[1])
    server_first.unlink()
    server = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "_server.py"),
            str(latency),
            "--reply",
            REPLY,
            "--first-request",
            str(server_first),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    port = int(server.stdout.readline())
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "instructgen",
        "from-dir",
        str(corpus),
        "--engine",
        "openai",
        "--base-url",
        f"http://127.0.0.1:{port}/v1",
        "--out",
        str(out),
        "--chunk-size",
        str(chunk_size),
        "--concurrency",
        str(concurrency),
        "--samples-per-chunk",
        str(samples_per_chunk),
        "--json",
    ]
    if dry_run:
        cmd.append("--dry-run")
    if executor != "local":
        cmd += ["--executor", executor, "--executor-workers", str(workers)]
    env = {**os.environ, "OPENAI_API_KEY": "sk-bench"}
    peaks: dict[str, int] = {"main": 0, "workers": 0, "main_anon": 0, "workers_anon": 0}
    worker_pids: set[int] = set()
    started = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid in _tree(proc.pid):
                rss, anon = _rss(pid)
                who = "main" if pid == proc.pid else "workers"
                if pid != proc.pid:
                    worker_pids.add(pid)
                peaks[who] = max(peaks[who], rss)
                peaks[who + "_anon"] = max(peaks[who + "_anon"], anon)
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    seconds = time.time() - started
    done.set()
    sampler.join()
    assert server.stdin is not None
    server.stdin.close()
    server.wait(10)
    if proc.returncode != 0:
        raise SystemExit(f"from-dir failed ({proc.returncode}): {stderr[-2000:]}")
    summary = json.loads(stdout)
    first = float(server_first.read_text()) - started if server_first.exists() else None
    server_first.unlink(missing_ok=True)
    return {
        "executor": executor,
        "seconds": round(seconds, 1),
        "first_request_s": None if first is None else round(first, 2),
        "peak_rss_main_mb": round(peaks["main"] / MB, 1),
        "peak_rss_worker_mb": round(peaks["workers"] / MB, 1),
        "peak_anon_main_mb": round(peaks["main_anon"] / MB, 1),
        "peak_anon_worker_mb": round(peaks["workers_anon"] / MB, 1),
        "worker_processes_seen": len(worker_pids),
        "summary": {k: summary.get(k) for k in SUMMARY_KEYS},
    }


def _dataset_bytes(out: Path) -> dict[str, bytes]:
    """The saved dataset's files, without ``state.json`` (``datasets`` draws its fingerprint
    anew at every save)."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted((out / "data").rglob("*"))
        if p.is_file() and p.name != "state.json"
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", choices=("text", "mixed"), default="text")
    ap.add_argument("--work", type=Path, default=Path("/tmp/instructgen-stream-bench"))
    ap.add_argument("--chunk-size", type=int, default=8000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--executor", choices=("local", "ray"), default="local")
    ap.add_argument("--executor-workers", type=int, default=2)
    ap.add_argument("--latency", type=float, default=0.0, help="the server's, in seconds")
    ap.add_argument("--samples-per-chunk", type=int, default=5)
    ap.add_argument(
        "--compare", action="store_true", help="run local, then ray: wall ratio and dataset"
    )
    a = ap.parse_args()
    corpus = a.work / a.case
    t0 = time.time()
    made = make_corpus(corpus, a.case)
    made_s = time.time() - t0
    executors = ("local", "ray") if a.compare else (a.executor,)
    results = [
        run(
            corpus,
            a.work / f"out-{a.case}-{name}",
            chunk_size=a.chunk_size,
            dry_run=a.dry_run,
            concurrency=a.concurrency,
            executor=name,
            workers=a.executor_workers,
            latency=a.latency,
            samples_per_chunk=a.samples_per_chunk,
        )
        for name in executors
    ]
    result: dict = results[0] if len(results) == 1 else {"runs": results}
    if len(results) == 2 and not a.dry_run:
        local, ray = (a.work / f"out-{a.case}-{name}" for name in executors)
        result["wall_ratio_ray_to_local"] = round(results[1]["seconds"] / results[0]["seconds"], 2)
        result["same_dataset_bytes"] = _dataset_bytes(local) == _dataset_bytes(ray)
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(
        json.dumps(
            {
                "case": a.case,
                "dry_run": a.dry_run,
                "chunk_size": a.chunk_size,
                "corpus_files": made["files"],
                "corpus_mb": round(made["bytes"] / MB, 1),
                "corpus_made_s": round(made_s, 1),
                **result,
                # the largest peak of any process of the run (the CLI, its workers, the server)
                "max_rss_any_process_mb": round(children / MB, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

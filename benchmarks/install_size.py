"""Fresh-virtualenv size of ``pip install .`` and of each extra; prints JSON.

    python benchmarks/install_size.py [--extras ,documents,audio,cohere,ai21,all] [--check]
        [--keep DIR] [--contrib contrib/instructgen-litellm]

Each target gets its own ``python3 -m venv`` (pip from the package index), measured with
``du -sm`` (the empty virtualenv, pip included, is reported too). ``--check`` then runs, in the
base-only virtualenv, ``instructgen plugins``, ``generate --dry-run`` and a real ``generate``
against a local OpenAI-compatible server (tests/wire_server.py with the Self-Instruct
responder), to show that the base install is enough for the main job. ``--contrib`` adds one
virtualenv per contrib plugin, installed on top of the base install.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared"

# Started with this interpreter (the test servers are not part of the install being measured).
SERVER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from selfinstruct_responder import respond
from wire_server import WireServer
server = WireServer().start()
server.responder = respond
print(server.openai_base_url, flush=True)
sys.stdin.read()
"""


def megabytes(path: Path) -> int:
    out = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def site_packages(venv: Path) -> Path:
    return next(venv.glob("lib/python*/site-packages"))


def largest(venv: Path, top: int = 8) -> dict[str, int]:
    sizes = {p.name: megabytes(p) for p in site_packages(venv).iterdir() if p.is_dir()}
    ordered = sorted(sizes.items(), key=lambda kv: -kv[1])
    return {name: mb for name, mb in ordered[:top]}


def make_venv(venv: Path, *targets: str) -> dict[str, Any]:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    start = time.monotonic()
    if targets:
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", *targets],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    listed = subprocess.run(
        [str(venv / "bin" / "pip"), "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return {
        "megabytes": megabytes(venv),
        "packages": len(json.loads(listed.stdout)),
        "torch_installed": (site_packages(venv) / "torch").exists(),
        "install_seconds": round(time.monotonic() - start, 1),
        "largest_mb": largest(venv),
    }


def check_base(venv: Path, work: Path) -> dict[str, Any]:
    """The main job with the base install only: listing, dry run, a real run on a local
    OpenAI-compatible server."""
    exe = str(venv / "bin" / "instructgen")
    tasks = work / "tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", tasks)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and "API_KEY" not in k}
    listing = subprocess.run([exe, "plugins", "--json"], capture_output=True, text=True, env=env)
    plugins = json.loads(listing.stdout)["plugins"]
    unavailable = {k: v for p in plugins for k, v in p.get("unavailable", {}).items()}
    dry = subprocess.run(
        [exe, "generate", str(tasks), "--engine", "openai", "--dry-run", "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    cohere = subprocess.run(
        [exe, "generate", str(tasks), "--engine", "cohere", "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
    )
    real = generate_on_local_server(venv, tasks, work / "out", "--engine", "openai")
    return {
        "unavailable": unavailable,
        "generate_dry_run_exit": dry.returncode,
        "generate_dry_run_requests": json.loads(dry.stdout)["requests"]["total"]
        if dry.returncode == 0
        else dry.stderr[-300:],
        "engine_cohere_exit": cohere.returncode,
        "engine_cohere_message": cohere.stderr.strip().splitlines()[-1:],
        "generate": real,
    }


def generate_on_local_server(venv: Path, tasks: Path, out: Path, *engine: str) -> dict[str, Any]:
    """``instructgen generate TASKS ENGINE --base-url LOCAL -n 5`` with the virtualenv's
    console script, against tests/wire_server.py answering like a model."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and "API_KEY" not in k}
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(ROOT / "tests")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        t0 = time.monotonic()
        cmd = [str(venv / "bin" / "instructgen"), "generate", str(tasks), *engine]
        cmd += ["--base-url", base_url, "-n", "5", "--out", str(out), "--json"]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        seconds = time.monotonic() - t0
    finally:
        server.kill()
        server.wait()
    result = json.loads(done.stdout) if done.returncode == 0 else {}
    return {
        "command": " ".join(["instructgen", "generate", "tasks.jsonl", *engine])
        + " --base-url http://127.0.0.1:PORT/v1 -n 5",
        "exit": done.returncode,
        "seconds": round(seconds, 1),
        "examples": result.get("examples"),
        "requests": result.get("requests"),
        "stderr_tail": done.stderr.strip().splitlines()[-2:] if done.returncode else [],
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--extras", default=",documents,audio,cohere,ai21,all")
    p.add_argument("--check", action="store_true", help="run the main job in the base venv")
    p.add_argument("--contrib", action="append", default=[], help="a contrib plugin folder")
    p.add_argument("--keep", help="build the virtualenvs here and keep them")
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="instructgen-size-")
    where = Path(a.keep or tmp)
    where.mkdir(parents=True, exist_ok=True)
    try:
        # pip builds from a copy, so nothing is written into the source tree
        src = where / "src"
        if not src.exists():
            shutil.copytree(
                ROOT,
                src,
                ignore=shutil.ignore_patterns(".venv", ".git", "build", "site", "*.egg-info"),
            )
        report: dict[str, Any] = {
            "python": sys.version.split()[0],
            "empty_venv": make_venv(where / "empty"),
        }
        installs: dict[str, Any] = {}
        for extra in a.extras.split(","):
            label = f"pip install '.[{extra}]'" if extra else "pip install ."
            target = f"{src}[{extra}]" if extra else str(src)
            installs[label] = make_venv(where / (extra or "base"), target)
        for folder in a.contrib:
            name = Path(folder).name
            label = f"pip install . ./contrib/{name}"
            installs[label] = make_venv(where / name, str(src), str(src / "contrib" / name))
        report["installs"] = installs
        if a.check:
            work = where / "check"
            work.mkdir(exist_ok=True)
            report["base_install_check"] = check_base(where / "base", work)
            if (where / "instructgen-litellm").exists():
                report["litellm_check"] = generate_on_local_server(
                    where / "instructgen-litellm",
                    work / "tasks.jsonl",
                    work / "out-litellm",
                    "--engine",
                    "litellm",
                    "--model",
                    "openai/gpt-4o-mini",
                )
        print(json.dumps(report, indent=2))
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

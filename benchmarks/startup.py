"""Median wall time of `instructgen --help` (and `instructgen plugins`) in fresh processes,
next to `python -c pass` measured in the same run. Prints JSON.

    python benchmarks/startup.py [--runs 21]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time


def timed(cmd: list[str], runs: int) -> dict[str, float]:
    subprocess.run(cmd, capture_output=True, check=False)  # warm the OS file cache once
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=False)
        samples.append(time.perf_counter() - start)
    return {
        "median_s": round(statistics.median(samples), 4),
        "min_s": round(min(samples), 4),
        "max_s": round(max(samples), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    exe = shutil.which("instructgen") or os.path.join(
        os.path.dirname(sys.executable), "instructgen"
    )
    baseline = timed([sys.executable, "-c", "pass"], args.runs)
    help_ = timed([exe, "--help"], args.runs)
    plugins = timed([exe, "plugins"], args.runs)
    print(
        json.dumps(
            {
                "runs": args.runs,
                "python_c_pass": baseline,
                "instructgen_help": help_,
                "instructgen_plugins": plugins,
                "help_over_baseline_s": round(help_["median_s"] - baseline["median_s"], 4),
                "goal_help_median_s": 0.3,
                "meets_goal": help_["median_s"] <= 0.3,
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

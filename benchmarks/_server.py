"""Run the tests' wire-format server in its own process (so its CPU use and GIL are not the
client's), for benchmarks. Prints the port on stdout, serves until stdin closes."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from wire_server import WireServer


def main() -> None:
    latency = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    server = WireServer().start()
    server.latency = latency
    print(server.port, flush=True)
    sys.stdin.read()  # until the parent closes the pipe
    server.stop()


if __name__ == "__main__":
    main()

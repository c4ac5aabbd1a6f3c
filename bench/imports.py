"""``python -m bench.imports``: what ``import producer`` costs a service at start-up.

Each figure is the median over fresh interpreters. The baseline, measured in the
same run, is ``import redis``: what ``import producer`` pulled in before redis-py was
deferred to the first send.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

PROBE = "import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"


def measure(stmt: str, runs: int) -> float:
    """Median seconds the statement takes in a fresh interpreter."""
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", PROBE.format(stmt=stmt)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        samples.append(float(out.stdout.strip()))
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.imports", description=__doc__)
    parser.add_argument("--runs", type=int, default=15, help="fresh interpreters per figure")
    args = parser.parse_args(argv)
    redis_ms = measure("import redis", args.runs) * 1000
    print(f"{'what':<30} {'median ms':>10} {'vs import redis':>15}")
    for name, stmt in (
        ("import redis (baseline)", "import redis"),
        ("import producer", "import producer"),
    ):
        ms = redis_ms if stmt == "import redis" else measure(stmt, args.runs) * 1000
        print(f"{name:<30} {ms:>10.1f} {ms / redis_ms:>15.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

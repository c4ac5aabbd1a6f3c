"""The worker's steps in instructions per event: a measure that does not drift with the machine.

    python -m bench.instructions [--events 2000] [--batches 3] [--compare DIR]

Wall-clock rates on a shared machine move by more than the changes one makes to the
worker's code (by up to twice within an hour on the machines this was built on).
Instruction counts do not: each step runs under ``valgrind --tool=callgrind`` in a
child process, once with ``--batches`` batches and once with none, and the difference,
divided by the rows, is the step's cost (the hash seed is fixed, so dict layouts match).

Steps, on the bench's events (the demo's traffic, as the producer encodes it):

- **prepare**: ``prepare_batch`` (validate, price, score, build the rows, add up the
  rollups): the worker's reading loop;
- **write**: ``write_batch`` into a freshly migrated database: the writer thread's own
  work (Postgres's is in its process, not counted);
- **rollups**: ``roll_up`` alone, part of prepare;
- **read**: XRANGE of the batch from Redis through redis-py and hiredis.

``--compare DIR`` runs the same steps on another checkout (a git worktree of the base
commit, say) and prints both with their ratio. Needs valgrind.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

STEPS = ("prepare", "write", "rollups", "read")
_COLLECTED = re.compile(rb"Collected : (\d+)")


def _child(root: str, step: str, batches: int, sets: int, events: int, url: str, key: str) -> None:
    """Run ``step`` ``batches`` times, after the same set-up (``sets`` batches made) as any run."""
    sys.path.insert(0, root)
    from bench.events import as_entries, stream_payloads
    from worker.prepare import prepare_batch
    from worker.pricing import PriceBook
    from worker.settings import WorkerSettings

    book, settings = PriceBook(lambda: []), WorkerSettings()
    # Distinct events for every batch (the write step stores each once), made beforehand,
    # as many in every run: only the measured batches differ between the two counts.
    entries = [as_entries(stream_payloads(events, seed=10 + i)) for i in range(sets + 1)]
    prepared = [prepare_batch(e, pricebook=book, settings=settings) for e in entries]
    work: Any
    if step == "prepare":

        def work(i: int) -> None:
            prepare_batch(entries[i], pricebook=book, settings=settings)

    elif step == "rollups":
        from worker.rollups import roll_up

        def work(i: int) -> None:
            roll_up(prepared[i].rows)

    elif step == "write":
        import psycopg

        from worker.store import write_batch

        conn = psycopg.connect(url, autocommit=True)

        def work(i: int) -> None:
            write_batch(conn, prepared[i].rows, stream="bench")

    else:
        import redis

        from producer.constants import EVENT_FIELD

        client = redis.Redis.from_url(url)
        pipe = client.pipeline(transaction=False)
        for _, fields in entries[0]:
            pipe.xadd(key, {EVENT_FIELD: fields[EVENT_FIELD], b"v": b"1"})
        pipe.execute()

        def work(i: int) -> None:
            client.xrange(key, count=events)

    work(0)  # warm: caches, first-call set-up
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000)  # as the worker tunes it (worker/supervisor.py)
    for i in range(1, batches + 1):
        work(i if step != "read" else 0)


def _count(root: str, step: str, batches: int, sets: int, events: int, url: str, key: str) -> int:
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,  # this file, also for another checkout: it need not have it
        "--child",
        step,
        str(batches),
        str(sets),
        str(events),
        url,
        key,
        root,
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, env=env, cwd=root, check=False)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{step} under valgrind failed:\n{done.stderr.decode()[-2000:]}")
    return int(found.group(1))


def per_event(root: str, step: str, *, batches: int, events: int, url: str, key: str) -> float:
    """Instructions per event of ``step`` at checkout ``root``."""
    base = _count(root, step, 0, batches, events, url, key)
    full = _count(root, step, batches, batches, events, url, key)
    return (full - base) / (batches * events)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        step, batches, sets, events, url, key, root = argv[1:8]
        _child(root, step, int(batches), int(sets), int(events), url, key)
        return
    from rich.console import Console
    from rich.table import Table

    from bench.env import bench_env, server_args

    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--events", type=int, default=2_000, help="events a batch")
    parser.add_argument("--batches", type=int, default=3, help="batches counted")
    parser.add_argument(
        "--steps", default=",".join(STEPS), help="comma-separated: " + ", ".join(STEPS)
    )
    parser.add_argument("--compare", type=Path, help="another checkout, measured the same way")
    server_args(parser)
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install -y valgrind")
    steps = [s for s in args.steps.split(",") if s]
    unknown = set(steps) - set(STEPS)
    if unknown:
        raise SystemExit(f"unknown steps {sorted(unknown)}; choose from {', '.join(STEPS)}")
    here = str(Path(__file__).resolve().parent.parent)
    roots = [here] if args.compare is None else [str(args.compare.resolve()), here]
    table = Table(title=f"Instructions per event ({args.batches} batches of {args.events})")
    table.add_column("step")
    for root in roots:
        table.add_column(root, justify="right")
    if len(roots) == 2:
        table.add_column("this / other", justify="right")
    with bench_env(args.redis_url, args.postgres_url) as env:
        for step in steps:
            figures = []
            for root in roots:
                url = env.fresh_database() if step == "write" else args.redis_url
                figures.append(
                    per_event(
                        root,
                        step,
                        batches=args.batches,
                        events=args.events,
                        url=url,
                        key=env.key(f"instructions-{len(figures)}"),
                    )
                )
                if step == "write":
                    env.drop_database(url)
            cells = [f"{f:,.0f}" for f in figures]
            if len(figures) == 2:
                cells.append(f"{figures[1] / figures[0]:.3f}")
            table.add_row(step, *cells)
    Console().print(table)


if __name__ == "__main__":
    main()

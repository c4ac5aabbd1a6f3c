"""Binary or text COPY for the worker's rows: what each costs Postgres and the client.

    python -m bench.copy_formats [--rows 40000] [--repeat 3]

The worker writes its rows with a binary COPY (``worker/store.py``), and the bench's
ceiling is that COPY. This measures the text COPY that the worker used before on the
same rows, interleaved with it on fresh databases, and prints rows/s and the CPU µs per
row of the Postgres backend and of the client, each as text over binary: above 1 is
what binary saves. The figures are in docs/performance.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import psycopg

from bench.env import BenchEnv, bench_env, server_args
from bench.events import stream_payloads
from bench.plumbing import copy_alone
from bench.throughput import CEILING, Result, _timed_write, copy_ceiling, prepare_rows
from worker.store import COLUMNS, Row

TEXT = "COPY of the finished rows, text"
_TEXT_COPY = f"COPY ai_call_logs ({', '.join(COLUMNS)}) FROM STDIN"


def _text_copy_rows(cur: psycopg.Cursor[Any], rows: Sequence[Row]) -> None:
    """Every value written as text and parsed by Postgres: the worker's COPY before."""
    with cur.copy(_TEXT_COPY) as copy:
        for row in rows:
            copy.write_row(row)


def text_copy(env: BenchEnv, rows: Sequence[Row]) -> Result:
    """The ceiling's COPY in text, in its transaction as the ceiling's is."""
    return _timed_write(env, rows, TEXT, lambda conn: copy_alone(conn, rows, _text_copy_rows))


def main(argv: list[str] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    parser = argparse.ArgumentParser(prog="python -m bench.copy_formats", description=__doc__)
    parser.add_argument("--rows", type=int, default=40_000, help="rows a COPY")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, interleaved")
    parser.add_argument("--run-id", help="the name of its databases (ailedger_bench_<run id>_…)")
    server_args(parser)
    args = parser.parse_args(argv)
    with bench_env(args.redis_url, args.postgres_url, args.run_id) as env:
        rows = prepare_rows(env.fresh_database(), stream_payloads(args.rows, seed=31))
        runs: dict[str, list[Result]] = {CEILING: [], TEXT: []}
        for _ in range(args.repeat):
            runs[TEXT].append(text_copy(env, rows))
            runs[CEILING].append(copy_ceiling(env, rows))
    if not all(r["ok"] for results in runs.values() for r in results):
        raise SystemExit("a COPY stored fewer rows than it was given")
    table = Table(title=f"COPY of {args.rows:,} rows, {args.repeat} runs each, interleaved")
    table.add_column("run")
    for name in ("rows/s", "Postgres µs/row", "client µs/row"):
        table.add_column(f"{name} binary", justify="right")
        table.add_column("text / binary", justify="right")
    for i, (binary, text) in enumerate(zip(runs[CEILING], runs[TEXT], strict=True), 1):
        cells = []
        for key in ("rate", "cpu_postgres_us", "cpu_client_us"):
            if not binary[key] or text[key] is None:  # not sampled, or under a clock tick
                cells += ["-", "-"]
                continue
            cells += [f"{binary[key]:,.1f}", f"{text[key] / binary[key]:.3f}"]
        table.add_row(str(i), *cells)
    Console().print(table)


if __name__ == "__main__":
    main()

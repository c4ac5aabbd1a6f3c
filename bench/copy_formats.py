"""Text or binary COPY for the worker's rows: what each costs Postgres and the client.

    python -m bench.copy_formats [--rows 40000] [--repeat 3]

The worker writes its rows with a text COPY (``worker/store.py``); the bench's ceiling
is the same COPY. This measures the alternative on the same rows, interleaved with it
on fresh databases: ``COPY … (FORMAT BINARY)`` with every column's type set, the
numbers, timestamps and text sent in psycopg's binary dumpers (in C), the event and
job ids (held as text by the worker) and the JSON columns (held as JSON text) sent by
two small dumpers here. It prints CPU µs per row of the Postgres backend and of the
client, and their ratios, binary over text: below 1 is cheaper. What it found, and why
the worker stays on text, is in docs/performance.md ("Two levers measured").
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format

from bench.env import BenchEnv, bench_env, server_args
from bench.events import stream_payloads
from bench.throughput import _COPY, CEILING, Result, _timed_write, copy_ceiling, prepare_rows
from worker.rollups import WRITER_SETTING
from worker.store import COLUMNS, Row

BINARY = "COPY of the finished rows, binary"


class _HeldAsText:
    """Registered with the dumpers below so that psycopg finds them by the column's oid."""


def _binary_dumpers(conn: psycopg.Connection[Any]) -> None:
    """uuid and jsonb columns whose values the worker holds as text."""
    uuid_oid = conn.adapters.types["uuid"].oid
    jsonb_oid = conn.adapters.types["jsonb"].oid

    class UuidText(Dumper):
        format = Format.BINARY
        oid = uuid_oid

        def dump(self, obj: Any) -> bytes:
            return obj.bytes if not isinstance(obj, str) else bytes.fromhex(obj.replace("-", ""))

    class JsonbText(Dumper):
        format = Format.BINARY
        oid = jsonb_oid

        def dump(self, obj: Any) -> bytes:
            return b"\x01" + obj.encode()  # jsonb's binary form: version 1, then the text

    conn.adapters.register_dumper(type("UuidHeldAsText", (_HeldAsText,), {}), UuidText)
    conn.adapters.register_dumper(type("JsonbHeldAsText", (_HeldAsText,), {}), JsonbText)


def _column_types(conn: psycopg.Connection[Any]) -> list[str]:
    found = dict(
        conn.execute(
            "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute"
            " WHERE attrelid = 'ai_call_logs'::regclass AND attnum > 0 AND NOT attisdropped"
        ).fetchall()
    )
    return [found[c] for c in COLUMNS]


def binary_copy(env: BenchEnv, rows: Sequence[Row]) -> Result:
    def write(conn: psycopg.Connection[Any]) -> None:
        _binary_dumpers(conn)
        types = _column_types(conn)
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(f"SET LOCAL {WRITER_SETTING} = 'writer'")  # no rollups, as the ceiling
            with cur.copy(f"{_COPY} (FORMAT BINARY)") as copy:
                copy.set_types(types)
                for row in rows:
                    copy.write_row(row)

    return _timed_write(env, rows, BINARY, write)


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
        runs: dict[str, list[Result]] = {CEILING: [], BINARY: []}
        for _ in range(args.repeat):
            runs[CEILING].append(copy_ceiling(env, rows))
            runs[BINARY].append(binary_copy(env, rows))
    if not all(r["ok"] for results in runs.values() for r in results):
        raise SystemExit("a COPY stored fewer rows than it was given")
    table = Table(title=f"COPY of {args.rows:,} rows, {args.repeat} runs each, interleaved")
    table.add_column("run")
    for name in ("rows/s", "Postgres µs/row", "client µs/row"):
        table.add_column(f"{name} text", justify="right")
        table.add_column("binary / text", justify="right")
    for i, (text, binary) in enumerate(zip(runs[CEILING], runs[BINARY], strict=True), 1):
        cells = []
        for key in ("rate", "cpu_postgres_us", "cpu_client_us"):
            if not text[key] or binary[key] is None:  # not sampled, or under a clock tick
                cells += ["-", "-"]
                continue
            cells += [f"{text[key]:,.1f}", f"{binary[key] / text[key]:.3f}"]
        table.add_row(str(i), *cells)
    Console().print(table)


if __name__ == "__main__":
    main()

"""Monthly partitions of ai_call_logs: what they cost writers, what they save retention.

    python -m bench.partitions [--rows 10000000] [--copy-rows 1000000]

Three figures, each in databases of its own on the local servers:

- **insert throughput**: one COPY of the same finished rows (spread over the last two
  months) into ai_call_logs as sql/012 leaves it (partitioned) and as it was before
  (one table), the same indexes on both, the rollup trigger off on both so that only
  the table layout differs; alternated, best of two each;
- **the migration's exclusive lock** at ``--rows``: sql/012 applied by ``ailedger
  migrate`` to a table of that size, while a writer inserts one row every 10 ms; the
  longest gap between two of its inserts is how long writers were held;
- **retention** at ``--rows`` over ten months: the oldest month (a tenth of the rows)
  removed by dropping its partition, next to the batched DELETE the same policy runs
  on the unpartitioned table.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql

from ailedger.ops.migrate import load_migrations, migrate, sql_dir
from ailedger.ops.partitions import add_months, ensure_partitions, month_start
from ailedger.ops.retention import delete_rows
from bench.env import DEFAULT_REDIS_URL, BenchEnv, bench_env, database_name, default_postgres_url
from worker.store import COLUMNS

Result = dict[str, Any]
_COLS = ", ".join((*COLUMNS, "created_at"))
_BIN = "(FORMAT binary)"

#: Rows like the platform's traffic, made by Postgres itself: ``g`` runs over the row
#: numbers, row g is at start + g * step. Cost of row g: (g mod 1000) millionths of a dollar.
SEED = """
INSERT INTO ai_call_logs (id, timestamp, job_id, task, model, provider, input_tokens,
    output_tokens, cost, cost_source, latency_ms, confidence_score, action, request_data)
SELECT gen_random_uuid(), %(start)s + g * %(step)s,
       ('00000000-0000-4000-8000-' || lpad(to_hex(g / 40), 12, '0'))::uuid,
       (ARRAY['material_classification', 'product_enrichment_stage2', 'image_analysis',
              'embedding'])[g %% 4 + 1],
       (ARRAY['claude-3-5-haiku-20241022', 'claude-3-5-sonnet-20241022',
              'meta-llama/Llama-4-Scout-17B-16E-Instruct', 'text-embedding-3-small'])[g %% 4 + 1],
       (ARRAY['anthropic', 'anthropic', 'together', 'openai'])[g %% 4 + 1],
       100 + g %% 900, g %% 300, (g %% 1000) * 0.000001, 'catalog', 200 + g %% 5000,
       round((g %% 100) / 100.0, 2),
       CASE WHEN g %% 10 = 0 THEN 'fallback_to_rules' ELSE 'use_ai_result' END,
       '{"prompt": "page"}'::jsonb
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) g
"""


def migrate_before(database_url: str, version: str) -> None:
    """Apply only the migrations numbered below ``version`` (a database as it was then)."""
    folder = Path(tempfile.mkdtemp(prefix="ailedger-sql-"))
    try:
        for migration in load_migrations():
            if migration.version < version:
                shutil.copy(sql_dir() / migration.name, folder / migration.name)
        migrate(database_url, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def bulk_load(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Indexes and user triggers of ai_call_logs off for the block, rebuilt after it."""
    key = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = 'ai_call_logs'::regclass AND contype = 'p'"
    ).fetchone()
    indexes = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'ai_call_logs'"
        " AND indexname <> %s",
        (key[0] if key else "",),
    ).fetchall()
    conn.execute("ALTER TABLE ai_call_logs DISABLE TRIGGER USER")
    if key:
        conn.execute(f"ALTER TABLE ai_call_logs DROP CONSTRAINT {key[0]}")
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")
    try:
        yield
    finally:
        if key:
            conn.execute(f"ALTER TABLE ai_call_logs ADD CONSTRAINT {key[0]} {key[1]}")
        for _, definition in indexes:
            conn.execute(definition)
        conn.execute("ALTER TABLE ai_call_logs ENABLE TRIGGER USER")
        conn.execute("ANALYZE ai_call_logs")


def seed(conn: psycopg.Connection[Any], rows: int, *, start: datetime, step: timedelta) -> None:
    """``rows`` rows of SEED into ai_call_logs, in chunks (a transaction each)."""
    chunk = 1_000_000
    for lo in range(0, rows, chunk):
        conn.execute(SEED, {"start": start, "step": step, "lo": lo, "hi": min(rows, lo + chunk)})


def seed_cost(rows: int) -> Any:
    """The total cost SEED gives ``rows`` rows, computed here rather than by Postgres."""
    from decimal import Decimal

    whole, rest = divmod(rows, 1000)
    return Decimal(whole * sum(range(1000)) + sum(range(rest))) * Decimal("0.000001")


# -- insert throughput -----------------------------------------------------------------------


def copy_throughput(pre_url: str, post_url: str, rows: int, say: Callable[[str], None]) -> Result:
    """Rows/s of one COPY of the same rows into each layout (best of two, alternated)."""
    start = datetime.now(UTC) - timedelta(days=60)
    with psycopg.connect(post_url, autocommit=True) as conn:
        ensure_partitions(conn, months_ahead=3, now=start)
        conn.execute("ALTER TABLE ai_call_logs DISABLE TRIGGER USER")
        with conn.transaction():
            seed(conn, rows, start=start, step=timedelta(days=60) / rows)
            data = bytearray()
            with conn.cursor().copy(
                f"COPY (SELECT {_COLS} FROM ai_call_logs) TO STDOUT {_BIN}"
            ) as out:
                for block in out:
                    data += block
            conn.execute("TRUNCATE ai_call_logs")
    timings: dict[str, list[float]] = {"partitioned": [], "unpartitioned": []}
    for layout, url in (("unpartitioned", pre_url), ("partitioned", post_url)) * 2:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER TABLE ai_call_logs DISABLE TRIGGER USER")
            conn.execute("TRUNCATE ai_call_logs")
            conn.execute("CHECKPOINT")
            began = time.perf_counter()
            with conn.cursor().copy(f"COPY ai_call_logs ({_COLS}) FROM STDIN {_BIN}") as copy:
                view, block = memoryview(data), 1 << 20
                for at in range(0, len(view), block):
                    copy.write(view[at : at + block])
            seconds = time.perf_counter() - began
            timings[layout].append(seconds)
            say(f"  COPY {rows:,} rows, {layout}: {seconds:.1f} s ({rows / seconds:,.0f} rows/s)")
    best = {layout: rows / min(s) for layout, s in timings.items()}
    return {
        "rows": rows,
        "unpartitioned_rows_per_s": round(best["unpartitioned"]),
        "partitioned_rows_per_s": round(best["partitioned"]),
        "partitioned_vs_unpartitioned": round(best["partitioned"] / best["unpartitioned"], 3),
        "seconds": {k: [round(s, 2) for s in v] for k, v in timings.items()},
    }


# -- the migration's exclusive lock ----------------------------------------------------------


class ProbeWriter(threading.Thread):
    """Inserts one row every 10 ms through the parent; records the longest gap."""

    def __init__(self, database_url: str) -> None:
        super().__init__(name="ailedger-bench-probe", daemon=True)
        self.database_url = database_url
        self.stop = threading.Event()
        self.gaps: list[float] = []
        self.inserted = 0

    def run(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            last = time.perf_counter()
            while not self.stop.is_set():
                conn.execute(
                    "INSERT INTO ai_call_logs (id, timestamp, task, model, cost_source)"
                    " VALUES (%s, now(), 'probe', 'probe', 'unpriced')",
                    (uuid.uuid4(),),
                )
                self.inserted += 1
                now = time.perf_counter()
                self.gaps.append(now - last)
                last = now
                self.stop.wait(0.01)


def migration_lock(url: str, say: Callable[[str], None]) -> Result:
    """Apply sql/012 to the table at ``url`` while a writer writes; the writer's longest stall."""
    probe = ProbeWriter(url)
    probe.start()
    time.sleep(1)
    began = time.perf_counter()
    migrate(url)
    total = time.perf_counter() - began
    time.sleep(1)
    probe.stop.set()
    probe.join(30)
    stall = max(probe.gaps)
    say(f"  migrate: {total:.1f} s in all; the writer's longest wait {stall * 1000:.0f} ms")
    return {
        "migrate_s": round(total, 2),
        "writer_longest_wait_ms": round(stall * 1000, 1),
        "writer_median_gap_ms": round(statistics.median(probe.gaps) * 1000, 1),
        "writer_rows": probe.inserted,
    }


# -- retention -------------------------------------------------------------------------------


def retention(pre_url: str, post_url: str, rows: int, say: Callable[[str], None]) -> Result:
    """The oldest of ten months removed: DROP of its partition next to batched DELETE."""
    first = add_months(month_start(datetime.now(UTC)), -10)
    step = (add_months(first, 10) - first) / rows
    cutoff = add_months(first, 1)
    out: Result = {"rows": rows}
    for layout, url in (("partitioned", post_url), ("unpartitioned", pre_url)):
        with psycopg.connect(url, autocommit=True) as conn:
            ensure_partitions(conn, months_ahead=10, now=first)
            began = time.perf_counter()
            with bulk_load(conn):
                seed(conn, rows, start=first, step=step)
            say(f"  {layout}: {rows:,} rows seeded in {time.perf_counter() - began:.0f} s")
            conn.execute("VACUUM ANALYZE ai_call_logs")
            began = time.perf_counter()
            gone, dropped = delete_rows(conn, cutoff, batch=10_000, dry_run=False)
            seconds = time.perf_counter() - began
            say(f"  {layout}: {gone:,} rows removed in {seconds:.2f} s (dropped: {dropped})")
            out[layout] = {"rows_removed": gone, "seconds": round(seconds, 3),
                           "partitions_dropped": dropped}  # fmt: skip
    return out


def _pre_012_database(env: BenchEnv) -> str:
    """A database of this run holding the schema as it was before sql/012."""
    url = env.fresh_database()  # named and cleaned up by the run
    with psycopg.connect(env.postgres_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database_name(url)))
        )
    migrate_before(url, "012")
    return url


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--copy-rows", type=int, default=1_000_000)
    parser.add_argument("--postgres-url", default=default_postgres_url())
    args = parser.parse_args(argv)

    def say(line: str) -> None:
        print(line, flush=True)

    report: Result = {}
    with bench_env(DEFAULT_REDIS_URL, args.postgres_url) as env:
        pre, post = _pre_012_database(env), env.fresh_database()
        say(f"insert throughput ({args.copy_rows:,} rows)")
        report["copy"] = copy_throughput(pre, post, args.copy_rows, say)
        env.drop_database(pre)
        env.drop_database(post)

        say(f"retention ({args.rows:,} rows over ten months)")
        pre, post = _pre_012_database(env), env.fresh_database()
        report["retention"] = retention(pre, post, args.rows, say)
        env.drop_database(post)

        say(f"the migration's exclusive lock ({args.rows:,} rows)")
        with psycopg.connect(pre, autocommit=True) as conn:
            conn.execute("TRUNCATE ai_call_logs")
            with bulk_load(conn):
                seed(conn, args.rows, start=datetime.now(UTC) - timedelta(days=300),
                     step=timedelta(days=300) / args.rows)  # fmt: skip
            conn.execute("VACUUM ANALYZE ai_call_logs")
        report["migration"] = migration_lock(pre, say)
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()

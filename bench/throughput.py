"""Stream → Postgres: how many events/s workers store, next to a raw COPY of the same rows.

The ceiling is Postgres taking the finished rows as fast as psycopg can hand them
over: the worker's own code prepares the rows once, outside the timing, and one
``COPY ai_call_logs FROM STDIN`` writes them into a freshly migrated database (the
same table, the same indexes). The workers are the real thing: the stream is filled
by pipelined XADD beforehand, then ``ailedger worker --burst --processes N`` runs
as a user would run it, in its own process(es), until the stream is drained. Then the
plumbing floor (bench/plumbing.py) drains the same events with the worker's own work
taken out: the most a worker of this design could reach on the machine.

Two rates per worker run: *steady* counts the rows committed from the moment every
worker process is consuming (its first heartbeat) to the start of the last batch's
transaction (``created_at`` is the transaction's start), so process start-up and the
burst mode's final empty read are left out; *wall* is rows over the whole command,
start-up included.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from ailedger.settings import Settings
from bench.cpu import MACHINE, CpuSampler
from bench.env import BenchEnv, database_name
from bench.events import as_entries, fill_stream
from bench.plumbing import copy_alone
from producer.constants import heartbeat_pattern
from worker.prepare import prepare_batch
from worker.pricing import PriceBook, load_overrides
from worker.store import Row, write_batch

Result = dict[str, Any]
GROUP = "ailedger-bench"

# Rows whose transaction began in [start, last transaction's start): the steady window.
_SPAN = """
WITH bounds AS (
    SELECT greatest(min(created_at), to_timestamp(%(ready)s)) AS first, max(created_at) AS last
    FROM ai_call_logs
)
SELECT (SELECT count(*) FROM ai_call_logs),
       count(*) FILTER (WHERE created_at >= bounds.first AND created_at < bounds.last),
       EXTRACT(EPOCH FROM bounds.first)::float8,
       EXTRACT(EPOCH FROM bounds.last)::float8,
       count(DISTINCT created_at)
FROM ai_call_logs, bounds
GROUP BY bounds.first, bounds.last
"""


def prepare_rows(database_url: str, payloads: Sequence[bytes]) -> list[Row]:
    """The rows the workers will store, made by the workers' own code (validate, price, score)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        book = PriceBook(lambda: load_overrides(conn))
        batch = prepare_batch(as_entries(payloads), pricebook=book, settings=Settings())
    if batch.rejects:
        first = batch.rejects[0]
        raise RuntimeError(f"{len(batch.rejects)} bench events are invalid, e.g. {first.reason}")
    return batch.rows


def copy_ceiling(env: BenchEnv, rows: Sequence[Row]) -> Result:
    """One COPY of the finished rows into a fresh ``ai_call_logs``: the rate to aim at.

    The table has every index and constraint, and no rollup trigger: the least it
    costs to store a row. The workers' own rollups are part of what they pay.
    """

    def write(conn: psycopg.Connection[Any]) -> None:
        conn.execute("ALTER TABLE ai_call_logs DISABLE TRIGGER ailedger_rollup_insert")
        copy_alone(conn, rows)

    return _timed_write(env, rows, CEILING, write)


def batched_writes(env: BenchEnv, rows: Sequence[Row], *, batch_size: int, how: str) -> Result:
    """The finished rows written one batch per transaction, as a worker's batches are.

    ``copy``: straight COPY into ``ai_call_logs``, no rollups. ``worker``: the worker's
    own ``write_batch`` (COPY into the table in a savepoint, plus its rollups).
    Together they split the gap to the ceiling into what batching costs, what the
    idempotent write costs, and (by difference) what reading and preparing costs.
    """
    batches = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]

    def write(conn: psycopg.Connection[Any]) -> None:
        for batch in batches:
            if how == "copy":
                copy_alone(conn, batch)
            else:
                write_batch(conn, batch, stream="bench")

    name = BATCHED_COPY if how == "copy" else BATCHED_WORKER_WRITE
    return _timed_write(env, rows, name.format(batch_size=batch_size), write)


CEILING = "COPY of the finished rows (ceiling)"
BATCHED_COPY = "  COPY, a transaction per {batch_size} rows"
BATCHED_WORKER_WRITE = "  worker's write_batch alone, {batch_size} rows a batch"


def _timed_write(
    env: BenchEnv,
    rows: Sequence[Row],
    name: str,
    write: Callable[[psycopg.Connection[Any]], None],
) -> Result:
    url = env.fresh_database()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            sampler = CpuSampler(database=database_name(url), fixed=env.redis_pid())
            with sampler:
                began, cpu_began = time.time(), time.process_time()
                write(conn)
                ended, cpu_ended = time.time(), time.process_time()
            seconds = ended - began
            stored = _count(conn)
    finally:
        env.drop_database(url)
    cpu = {
        "cpu_client": cpu_ended - cpu_began,
        "cpu_postgres": sampler.seconds("postgres", began, ended),
        "cpu_redis": sampler.seconds("redis", began, ended),
    }
    machine = sampler.seconds(MACHINE, began, ended)
    return _per_event(cpu, len(rows), seconds, machine) | {
        "name": name,
        "processes": 0,
        "events": len(rows),
        "stored": stored,
        "seconds": seconds,
        "rate": len(rows) / seconds,
        "wall_seconds": seconds,
        "wall_rate": len(rows) / seconds,
        "ok": stored == len(rows),
    }


def _per_event(
    cpu: dict[str, float | None], events: int, seconds: float, machine: float | None
) -> Result:
    """CPU µs per event by process group, their total, the cores that kept busy.

    ``machine`` is the busy CPU of the whole machine over the same window: what is
    left after ours is what other processes took from the measurement.
    """
    out: Result = {
        f"{k}_us": (v / events * 1e6 if v is not None and events else None) for k, v in cpu.items()
    }
    known = [v for v in cpu.values() if v is not None]
    ours = sum(known)
    out["cpu_total_us"] = ours / events * 1e6 if known and events else None
    out["cores_busy"] = ours / seconds if known and seconds else None
    out["other_cores"] = (
        max(0.0, machine - ours) / seconds if machine is not None and seconds else None
    )
    return out


def _count(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM ai_call_logs").fetchone()
    return int(row[0]) if row else 0


def worker_command(processes: int, batch_size: int) -> list[str]:
    """The command a user runs: ``ailedger worker --burst --processes N``."""
    return _command("ailedger.cli", "worker", "--burst", processes=processes, batch=batch_size)


def plumbing_command(processes: int, batch_size: int) -> list[str]:
    """The plumbing floor (bench/plumbing.py): a worker's path without the worker's own work."""
    return _command("bench.plumbing", processes=processes, batch=batch_size)


def _command(module: str, *words: str, processes: int, batch: int) -> list[str]:
    flags = ["--processes", str(processes), "--batch-size", str(batch)]
    return [sys.executable, "-m", module, *words, *flags]


def worker_run(
    env: BenchEnv,
    payloads: Sequence[bytes],
    *,
    processes: int,
    batch_size: int,
    floor: bool = False,
) -> Result:
    """Fill a fresh stream, run the worker command on it, and read back what it stored.

    ``floor``: run the plumbing floor (``plumbing_command``) instead of the workers.
    """
    command = (plumbing_command if floor else worker_command)(processes, batch_size)
    url = env.fresh_database()
    stream = env.key(f"workers-{processes}-{time.monotonic_ns()}")
    client = env.redis()
    try:
        fill_stream(client, stream, payloads)
        child_env = dict(
            os.environ,
            AILEDGER_REDIS_URL=env.redis_url,
            AILEDGER_DATABASE_URL=url,
            AILEDGER_STREAM=stream,
            AILEDGER_GROUP=GROUP,
            AILEDGER_LOG_LEVEL="WARNING",
        )
        children: list[int] = []
        sampler = CpuSampler(
            database=database_name(url), roots=lambda: children, fixed=env.redis_pid()
        )
        with sampler:
            began = time.perf_counter()
            proc = subprocess.Popen(
                command,
                env=child_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            children.append(proc.pid)
            try:
                ready = _all_running(env, stream, processes, proc)
                _out, stderr = proc.communicate(timeout=3_600)
            except BaseException:
                # Stopped or timed out: the workers must not outlive the run's stream.
                proc.terminate()
                proc.wait(30)
                raise
            wall = time.perf_counter() - began
        if proc.returncode != 0:
            raise RuntimeError(f"worker command exited {proc.returncode}: {stderr.strip()[-2000:]}")
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(_SPAN, {"ready": ready}).fetchone()
        assert row is not None
        stored, before_last, first, last = int(row[0]), int(row[1]), row[2] or 0.0, row[3] or 0.0
        batches = int(row[4])
        span = last - first
        pending = int(client.xpending(stream, GROUP)["pending"])
    finally:
        client.delete(stream)
        client.close()
        env.drop_database(url)
    n = len(payloads)
    cpu = {
        "cpu_client": sampler.seconds("workers", first, last),
        "cpu_postgres": sampler.seconds("postgres", first, last),
        "cpu_redis": sampler.seconds("redis", first, last),
    }
    machine = sampler.seconds(MACHINE, first, last)
    plural = "es" if processes > 1 else ""
    return _per_event(cpu, before_last, span, machine) | {
        "name": (
            f"  plumbing only, {processes} process{plural}: read, decode, COPY, XACK"
            if floor
            else f"{processes} worker process{plural}"
        ),
        # The targets are the workers': the floor is what they could reach at most.
        "processes": 0 if floor else processes,
        "floor_processes": processes if floor else 0,
        "events": n,
        "stored": stored,
        "pending": pending,
        "transactions": batches,
        "seconds": span,
        "rate": before_last / span if span else n / wall,
        "wall_seconds": wall,
        "wall_rate": n / wall,
        "ok": stored == n and pending == 0,
        "stderr": stderr.strip()[-2000:],
    }


def _all_running(env: BenchEnv, stream: str, processes: int, proc: subprocess.Popen[str]) -> float:
    """When the last of the worker processes began consuming (its first heartbeat), or 0.

    Spawned processes start one after the other; counting from the first commit would
    credit the first worker's head start to the group.
    """
    client = env.redis()
    try:
        while proc.poll() is None:
            if len(client.keys(heartbeat_pattern(stream))) >= processes:
                return time.time()
            time.sleep(0.005)
        return 0.0
    finally:
        client.close()


def run_throughput(
    env: BenchEnv,
    payloads: Sequence[bytes],
    rows: Sequence[Row],
    *,
    processes: Sequence[int] = (1, 2),
    batch_size: int = 500,
) -> list[Result]:
    """The ceiling, then each worker count, on the same events."""
    results = [
        copy_ceiling(env, rows),
        batched_writes(env, rows, batch_size=batch_size, how="copy"),
        batched_writes(env, rows, batch_size=batch_size, how="worker"),
    ]
    for n in processes:
        results.append(worker_run(env, payloads, processes=n, batch_size=batch_size))
    for n in processes:
        results.append(worker_run(env, payloads, processes=n, batch_size=batch_size, floor=True))
    ceiling = results[0]["rate"]
    for result in results:
        result["vs_ceiling"] = result["rate"] / ceiling
        result["wall_vs_ceiling"] = result["wall_rate"] / ceiling
    return results

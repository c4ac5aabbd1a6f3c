"""The plumbing floor: a worker's path with the worker's own work taken out.

    python -m bench.plumbing --processes N --batch-size B
    (AILEDGER_REDIS_URL, AILEDGER_DATABASE_URL, AILEDGER_STREAM, AILEDGER_GROUP, as a worker)

Each process reads the stream through the consumer group, decodes each entry's JSON,
makes a row of the fields as they were sent, COPYs the batch with the workers' own
binary COPY (``worker.store.copy_rows``) in a transaction and acknowledges it: reading
on one thread while a second writes the batch before, as ``ailedger worker`` does.
Nothing is validated, priced or scored, no rollup is added up, no dead letter is
possible: what is left is what every worker of this design pays per event (Redis,
hiredis, the JSON decode, the COPY), whatever its own code costs.

Its rate, next to the ceiling, is the most a worker could reach on this machine if
validating, pricing, scoring and adding up the rollups were free. It stores rows a
worker would not (no cost, no score): a measurement, never a way to store events.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

import msgspec
import psycopg
import redis

from producer.constants import EVENT_FIELD, heartbeat_key
from worker.rollups import WRITER_SETTING
from worker.source import ensure_group
from worker.store import Row, copy_rows


class _Event(msgspec.Struct):
    """An event of the bench's traffic, as its fields were sent: nothing checked.

    One decode, the payloads kept as the JSON text that was sent, as the workers keep
    them: the floor pays the least any decode of these events can.
    """

    id: str
    timestamp: str
    task: str
    model: str
    job_id: Any = None
    provider: Any = None
    input_tokens: Any = None
    output_tokens: Any = None
    cache_read_tokens: Any = None
    cache_write_tokens: Any = None
    cache_write_1h_tokens: Any = None
    image_id: Any = None
    latency_ms: Any = None
    confidence_breakdown: msgspec.Raw = msgspec.Raw()  # empty when the event has none
    action: Any = None
    fallback_reason: Any = None
    request_data: msgspec.Raw = msgspec.Raw()
    response_data: msgspec.Raw = msgspec.Raw()
    error_message: Any = None
    service: Any = None


_decode = msgspec.json.Decoder(_Event).decode


def _json(raw: msgspec.Raw) -> str | None:
    text = bytes(raw)
    return None if text in (b"", b"null") else text.decode()


def _row(raw: bytes) -> Row:
    """The row of one entry, no cost, no score: only what every worker must do to store it."""
    e = _decode(raw)
    return Row(
        e.id,
        datetime.fromisoformat(e.timestamp),
        e.job_id,
        None,
        e.task,
        e.model,
        e.provider,
        e.input_tokens,
        e.output_tokens,
        e.cache_read_tokens,
        e.cache_write_tokens,
        e.cache_write_1h_tokens,
        e.image_id,
        None,
        "unpriced",
        e.latency_ms,
        None,
        _json(e.confidence_breakdown),
        e.action,
        e.fallback_reason,
        _json(e.request_data),
        _json(e.response_data),
        e.error_message,
        None,
        e.service,
    )


def _write(
    conn: psycopg.Connection[Any],
    client: redis.Redis,
    stream: str,
    group: str,
    ids: list[bytes],
    rows: list[Row],
) -> None:
    copy_alone(conn, rows)
    client.xack(stream, group, *ids)


def copy_alone(
    conn: psycopg.Connection[Any],
    rows: Sequence[Row],
    copy: Callable[[psycopg.Cursor[Any], Sequence[Row]], None] = copy_rows,
) -> None:
    """``copy`` (the worker's own, binary: worker/store.py) alone in its transaction.

    No rollups: the table's trigger stands aside, as for the worker, and none are added.
    The ceiling's COPY (bench/throughput.py) is this too, in one transaction.
    """
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(f"SET LOCAL {WRITER_SETTING} = 'writer'")
        copy(cur, rows)


def consume(redis_url: str, database_url: str, stream: str, group: str, batch_size: int) -> int:
    """Drain ``stream`` through ``group`` until a read comes back empty; returns the rows."""
    consumer = f"plumbing-{socket.gethostname()}-{os.getpid()}"
    reader = redis.Redis.from_url(redis_url)
    acker = redis.Redis.from_url(redis_url)
    heartbeat = heartbeat_key(stream, consumer)
    reader.set(heartbeat, b"1", px=120_000)  # "consuming": the bench starts its window here
    stored = 0
    try:
        with psycopg.connect(database_url, autocommit=True) as conn, ThreadPoolExecutor(1) as pool:
            inflight: Future[None] | None = None
            while True:
                found = reader.xreadgroup(group, consumer, {stream: ">"}, count=batch_size)
                entries = found[0][1] if found else []
                if not entries:
                    break
                ids = [entry_id for entry_id, _ in entries]
                rows = [_row(fields[EVENT_FIELD]) for _, fields in entries]
                if inflight is not None:
                    inflight.result()
                inflight = pool.submit(_write, conn, acker, stream, group, ids, rows)
                stored += len(rows)
            if inflight is not None:
                inflight.result()
    finally:
        reader.delete(heartbeat)
        reader.close()
        acker.close()
    return stored


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plumbing", description=__doc__)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=2_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # Stopped by the bench (SIGTERM: its run ended early): the children must not outlive the
    # parent, and each removes its heartbeat key on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    env = os.environ
    if args.child:
        consume(
            env["AILEDGER_REDIS_URL"],
            env["AILEDGER_DATABASE_URL"],
            env["AILEDGER_STREAM"],
            env["AILEDGER_GROUP"],
            args.batch_size,
        )
        return 0
    client = redis.Redis.from_url(env["AILEDGER_REDIS_URL"])
    try:
        ensure_group(client, env["AILEDGER_STREAM"], env["AILEDGER_GROUP"])
    finally:
        client.close()
    command = [sys.executable, "-m", "bench.plumbing", "--child", "--batch-size"]
    children = [subprocess.Popen([*command, str(args.batch_size)]) for _ in range(args.processes)]
    try:
        return max(child.wait() for child in children)
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
                child.wait(30)


if __name__ == "__main__":
    raise SystemExit(main())

"""Writing a batch to Postgres: COPY into a staging table, then one idempotent INSERT.

The event id and its timestamp (set once, by the producer) are the primary key, so a batch
delivered twice (a worker died after the commit, before XACK) inserts nothing the second time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

COLUMNS = (
    "id",
    "timestamp",
    "job_id",
    "job_key",
    "task",
    "model",
    "provider",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "image_id",
    "cost",
    "cost_source",
    "latency_ms",
    "confidence_score",
    "confidence_breakdown",
    "action",
    "fallback_reason",
    "request_data",
    "response_data",
    "error_message",
    "ingest_notes",
    "service",
)
_COLS = ", ".join(COLUMNS)
_STAGE = "ailedger_stage"
_CREATE_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (LIKE ai_call_logs INCLUDING DEFAULTS)"
    " ON COMMIT DELETE ROWS"
)
_COPY = f"COPY {_STAGE} ({_COLS}) FROM STDIN"
_INSERT = (
    f"INSERT INTO ai_call_logs ({_COLS}) SELECT {_COLS} FROM {_STAGE} ON CONFLICT (id, timestamp)"
    " DO NOTHING"
)
_REJECT = """
INSERT INTO ai_call_rejects (stream_id, stream, event_id, reason, raw, delivery_count)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (stream_id) DO UPDATE SET
    reason = EXCLUDED.reason,
    delivery_count = GREATEST(ai_call_rejects.delivery_count, EXCLUDED.delivery_count),
    last_seen = NOW()
"""

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Reject:
    """An entry that cannot be stored, kept with its reason and raw bytes."""

    stream_id: str
    reason: str
    raw: bytes
    event_id: str | None = None
    delivery_count: int = 1


def write_batch(
    conn: psycopg.Connection[Any],
    rows: Sequence[Row],
    rejects: Sequence[Reject] = (),
    *,
    stream: str,
) -> int:
    """Store rows and rejects in one transaction; returns how many rows were new."""
    inserted = 0
    with conn.transaction(), conn.cursor() as cur:
        if rows:
            cur.execute(_CREATE_STAGE)
            with cur.copy(_COPY) as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute(_INSERT)
            inserted = cur.rowcount
        if rejects:
            cur.executemany(
                _REJECT,
                [
                    (r.stream_id, stream, r.event_id, r.reason, r.raw, r.delivery_count)
                    for r in rejects
                ],
            )
    return inserted

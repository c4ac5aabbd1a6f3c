"""Writing a batch to Postgres: COPY straight into ``ai_call_logs``, staging only on conflict.

The event id and its timestamp (set once, by the producer) are the primary key, so a
batch delivered twice (a worker died after the commit, before XACK) inserts nothing the
second time. The common case, a batch
of new ids, is one COPY into the table inside a savepoint; only when that COPY hits
a unique violation is the savepoint rolled back and the batch written the careful
way: COPY into a staging table, then ``INSERT … ON CONFLICT DO NOTHING RETURNING``,
which names the rows really inserted. The rollups (worker/rollups.py) are added
from exactly those rows, in the same transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

import psycopg
from psycopg.pq import TransactionStatus

from worker.rollups import WRITER_SETTING, Tallies, add_rollups


class Row(NamedTuple):
    """One ``ai_call_logs`` row as the worker writes it: the fields are the columns, in order."""

    id: Any  # UUID or its text
    timestamp: datetime
    job_id: Any  # UUID or its text, or None
    job_key: str | None
    task: str
    model: str
    provider: str | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    cache_write_1h_tokens: int | None
    image_id: str | None
    cost: Decimal | None
    cost_source: str
    latency_ms: int | None
    confidence_score: Decimal | None
    confidence_breakdown: str | None  # JSON text
    action: str | None
    fallback_reason: str | None
    request_data: str | None  # JSON text
    response_data: str | None  # JSON text
    error_message: str | None
    ingest_notes: str | None  # JSON text
    service: str | None


COLUMNS: tuple[str, ...] = Row._fields
#: What makes a row a duplicate: the table's unique key.
CONFLICT_TARGET = "(id, timestamp)"

_COLS = ", ".join(COLUMNS)
_STAGE = "ailedger_stage"
_CREATE_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (LIKE ai_call_logs INCLUDING DEFAULTS)"
    " ON COMMIT DELETE ROWS"
)
_COPY_STRAIGHT = f"COPY ai_call_logs ({_COLS}) FROM STDIN"
_COPY_STAGE = f"COPY {_STAGE} ({_COLS}) FROM STDIN"
_INSERT = (
    f"INSERT INTO ai_call_logs ({_COLS}) SELECT {_COLS} FROM {_STAGE}"
    f" ON CONFLICT {CONFLICT_TARGET} DO NOTHING RETURNING id"
)
# The table's own rollup trigger stands aside: this transaction adds the rollups itself.
_WRITER_ROLLUPS = f"SET LOCAL {WRITER_SETTING} = 'writer'"
# A conflict on the straight COPY undoes only the COPY.
_SAVEPOINT = "SAVEPOINT ailedger_straight"
_ROLLBACK_TO_SAVEPOINT = "ROLLBACK TO SAVEPOINT ailedger_straight"
_REJECT = """
INSERT INTO ai_call_rejects (stream_id, stream, event_id, reason, raw, delivery_count)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (stream_id) DO UPDATE SET
    reason = EXCLUDED.reason,
    delivery_count = GREATEST(ai_call_rejects.delivery_count, EXCLUDED.delivery_count),
    last_seen = NOW()
"""


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
    tallies: Tallies | None = None,
) -> int:
    """Store rows and rejects in one transaction; returns how many rows were new.

    ``tallies``: ``worker.rollups.roll_up(rows)``, added up beforehand (the worker does it
    on its reading loop, off the writer's path). Used when every row is new; when some
    were stored already, the rollups are added up again from the rows really inserted.

    ``conn`` is in autocommit mode and outside a transaction (the writer's is): the batch
    is its own transaction, in four round trips instead of nine. Its opening (``BEGIN``,
    the rollup setting, a savepoint) and its closing (the rollup upserts, the rejects,
    ``COMMIT``) each go as one pipeline, around the COPY: five waits less per batch
    where Postgres is across a network (on loopback the rate is the same,
    docs/performance.md). On any error the transaction is rolled back and the error
    raised, with nothing stored.
    """
    if not conn.autocommit or conn.info.transaction_status != TransactionStatus.IDLE:
        raise ValueError(
            "write_batch runs its own transaction: pass a connection in autocommit mode"
            " that is not inside a transaction"
        )
    # Positional tuples are rows too (tools, tests): named once here.
    rows = [row if isinstance(row, Row) else Row._make(row) for row in rows]
    try:
        with conn.cursor() as cur:
            with conn.pipeline():
                cur.execute("BEGIN")
                if rows:
                    cur.execute(_WRITER_ROLLUPS)
                    cur.execute(_SAVEPOINT)
            new = _insert(cur, rows) if rows else []
            with conn.pipeline():
                add_rollups(cur, new, tallies if new is rows else None)
                if rejects:
                    cur.executemany(
                        _REJECT,
                        [
                            (r.stream_id, stream, r.event_id, r.reason, r.raw, r.delivery_count)
                            for r in rejects
                        ],
                    )
                cur.execute("COMMIT")
    except BaseException:
        _roll_back(conn)
        raise
    return len(new)


def _roll_back(conn: psycopg.Connection[Any]) -> None:
    """End a failed batch's transaction, if the connection can still say so."""
    if conn.closed or conn.broken or conn.info.transaction_status == TransactionStatus.IDLE:
        return
    with contextlib.suppress(psycopg.Error):
        conn.execute("ROLLBACK")


def _insert(cur: psycopg.Cursor[Any], rows: Sequence[Row]) -> Sequence[Row]:
    """Insert the rows whose ids are not stored yet; returns those rows."""
    try:
        _copy(cur, _COPY_STRAIGHT, rows)
        return rows
    except psycopg.errors.UniqueViolation:
        # Some ids are stored already (a batch delivered again): undo only this COPY.
        cur.execute(_ROLLBACK_TO_SAVEPOINT)
    cur.execute(_CREATE_STAGE)
    _copy(cur, _COPY_STAGE, rows)
    cur.execute(_INSERT)
    new = {str(r[0]) for r in cur.fetchall()}
    return [row for row in rows if str(row[0]) in new]


def _copy(cur: psycopg.Cursor[Any], statement: str, rows: Sequence[Row]) -> None:
    with cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)

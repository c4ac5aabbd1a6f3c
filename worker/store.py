"""Writing a batch to Postgres: COPY straight into ``ai_call_logs``, staging only on conflict.

The event id and its timestamp (set once, by the producer) are the primary key, so a
batch delivered twice (a worker died after the commit, before XACK) inserts nothing the
second time. The common case, a batch
of new ids, is one COPY into the table inside a savepoint; only when that COPY hits
a unique violation is the savepoint rolled back and the batch written the careful
way: COPY into a staging table, then ``INSERT … ON CONFLICT DO NOTHING RETURNING``,
which names the rows really inserted. The rollups (worker/rollups.py) are added
from exactly those rows, in the same transaction.

The COPY is binary (``COPY_TYPES``): Postgres takes the numbers, times and ids as they
are, instead of parsing their text, about an eighth less of its CPU per row
(docs/performance.md). The values' checks move with it: Postgres still refuses bad text
and JSON, but psycopg writes an ``int`` into 4 bytes without checking that it fits, so the
rows' counts must be within ``int4``, as the worker's validation keeps them; a value of the
wrong type is refused as that row's ``DataError``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID

import psycopg
from psycopg.adapt import Dumper
from psycopg.postgres import types as pg_types
from psycopg.pq import Format, TransactionStatus

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
#: The column types, in ``COLUMNS`` order, that the binary COPY writes (tests check them
#: against the table).
COPY_TYPES: tuple[str, ...] = (
    "uuid",
    "timestamptz",
    "uuid",
    "text",
    "text",
    "text",
    "text",
    "int4",
    "int4",
    "int4",
    "int4",
    "int4",
    "text",
    "numeric",
    "text",
    "int4",
    "numeric",
    "jsonb",
    "text",
    "text",
    "jsonb",
    "jsonb",
    "text",
    "jsonb",
    "text",
)
#: What makes a row a duplicate: the table's unique key.
CONFLICT_TARGET = "(id, timestamp)"

_COLS = ", ".join(COLUMNS)
_STAGE = "ailedger_stage"
_CREATE_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (LIKE ai_call_logs INCLUDING DEFAULTS)"
    " ON COMMIT DELETE ROWS"
)
_COPY_STRAIGHT = f"COPY ai_call_logs ({_COLS}) FROM STDIN (FORMAT BINARY)"
_COPY_STAGE = f"COPY {_STAGE} ({_COLS}) FROM STDIN (FORMAT BINARY)"
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


class _UuidBinary(Dumper):
    """A uuid held as its text (the worker's ids) or as a ``UUID``: its 16 bytes."""

    format = Format.BINARY
    oid = pg_types["uuid"].oid

    def dump(self, obj: Any) -> bytes:
        if isinstance(obj, UUID):
            packed: bytes = obj.bytes
            return packed
        data = bytes.fromhex(obj.replace("-", ""))
        if len(data) != 16:  # Postgres would take a short value as a broken protocol
            raise ValueError(f"{obj!r} is not a UUID")
        return data


class _JsonbTextBinary(Dumper):
    """JSON held as its text (the worker's payloads): jsonb's binary form is version 1, then it."""

    format = Format.BINARY
    oid = pg_types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        text: str = obj
        return b"\x01" + text.encode()


class _UuidColumn:
    """Only a key to register ``_UuidBinary`` under: COPY finds its dumpers by the oid."""


class _JsonbColumn:
    """Only a key to register ``_JsonbTextBinary`` under."""


#: What a dumper raises for a value it cannot write: that row's fault, like Postgres's DataError.
_DUMP_ERRORS = (TypeError, ValueError, AttributeError, OverflowError)


def copy_rows(cur: psycopg.Cursor[Any], rows: Sequence[Row]) -> None:
    """The worker's COPY of ``rows`` into ``ai_call_logs``, with nothing around it."""
    _copy(cur, _COPY_STRAIGHT, rows)


def _copy(cur: psycopg.Cursor[Any], statement: str, rows: Sequence[Row]) -> None:
    adapters = cur.adapters  # the cursor's own: the connection's stay as they are
    adapters.register_dumper(_UuidColumn, _UuidBinary)
    adapters.register_dumper(_JsonbColumn, _JsonbTextBinary)
    with cur.copy(statement) as copy:
        copy.set_types(COPY_TYPES)
        for row in rows:
            try:
                copy.write_row(row)
            except _DUMP_ERRORS as exc:
                raise psycopg.DataError(
                    f"it cannot be written for COPY: {exc} (row {row[0]!r}; the worker writes"
                    " the rows that worker.prepare.prepare_batch makes)"
                ) from exc

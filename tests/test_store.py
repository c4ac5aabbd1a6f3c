"""The worker's write path: COPY straight into the table, staging only when ids are stored."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import orjson
import psycopg
import pytest
from psycopg.pq import TransactionStatus

from tests.test_rollups import assert_rollups_match, make_rows, stored_rollups
from worker.consumer import Worker
from worker.prepare import PreparedBatch
from worker.rollups import LATENCY_BOUNDS
from worker.store import COLUMNS, COPY_TYPES, Reject, write_batch


def _calls(db) -> int:
    row = db.execute("SELECT sum(calls) FROM ai_call_rollups WHERE grain = 'day'").fetchone()
    return int(row[0] or 0)


def test_a_batch_with_one_stored_id_stores_the_rest_and_counts_only_those(db) -> None:
    rows = make_rows(random.Random(11), 500)
    assert write_batch(db, rows[250:251], stream="s") == 1
    # The straight COPY meets the stored id; the batch is written again through staging.
    assert write_batch(db, rows, stream="s") == 499
    assert db.execute("SELECT count(*) FROM ai_call_logs").fetchone() == (500,)
    assert _calls(db) == 500
    assert_rollups_match(db)


def test_a_batch_of_new_ids_after_a_redelivery_is_stored_whole(db) -> None:
    rng = random.Random(12)
    first, second = make_rows(rng, 300), make_rows(rng, 300)
    write_batch(db, first, stream="s")
    assert write_batch(db, first, stream="s") == 0
    assert write_batch(db, second, stream="s") == 300
    assert _calls(db) == 600
    assert_rollups_match(db)


def test_the_workers_rollups_equal_a_rebuild_from_the_raw_rows(db) -> None:
    rows = make_rows(random.Random(13), 3_000, hours=80)
    for start in range(0, len(rows), 700):
        write_batch(db, rows[start : start + 700], stream="s")
    written = stored_rollups(db)
    reasons = db.execute("SELECT * FROM ai_call_fallback_rollups ORDER BY 1, 2, 3, 4, 5").fetchall()
    db.execute("SELECT ailedger_rebuild_rollups('-infinity', 'infinity')")
    assert stored_rollups(db) == written
    rebuilt = db.execute("SELECT * FROM ai_call_fallback_rollups ORDER BY 1, 2, 3, 4, 5")
    assert rebuilt.fetchall() == reasons


def test_the_latency_buckets_are_the_databases(db) -> None:
    row = db.execute("SELECT ailedger_latency_bounds()").fetchone()
    assert row is not None and tuple(row[0]) == LATENCY_BOUNDS


def test_rows_inserted_by_anything_else_are_still_rolled_up(db) -> None:
    write_batch(db, make_rows(random.Random(14), 200), stream="s")
    db.execute(
        "INSERT INTO ai_call_logs (id, timestamp, task, model, latency_ms, cost, cost_source)"
        " VALUES (%s, %s, 'text_embedding', 'text-embedding-3-small', 42, 0.001, 'catalog')",
        (uuid.uuid4(), datetime(2025, 3, 31, 1, 2, tzinfo=UTC)),
    )
    assert _calls(db) == 201
    assert_rollups_match(db)


def test_a_refused_batch_stores_nothing_and_leaves_the_connection_ready(db) -> None:
    rows = make_rows(random.Random(15), 300)
    rejects = [Reject(stream_id="1-1", reason="kept", raw=b"{}")]
    # NUMERIC(18, 12) holds at most a million dollars a call: Postgres refuses this row.
    refused = [*rows[:150], rows[150]._replace(cost=Decimal(10**7)), *rows[151:]]
    with pytest.raises(psycopg.errors.NumericValueOutOfRange):
        write_batch(db, refused, rejects, stream="s")
    assert db.info.transaction_status == TransactionStatus.IDLE
    assert db.execute("SELECT count(*) FROM ai_call_logs").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM ai_call_rejects").fetchone() == (0,)
    assert _calls(db) == 0
    assert write_batch(db, rows, rejects, stream="s") == 300  # the same connection goes on
    assert db.execute("SELECT count(*) FROM ai_call_rejects").fetchone() == (1,)
    assert _calls(db) == 300
    assert_rollups_match(db)


def test_a_connection_not_in_autocommit_mode_is_refused_with_what_to_pass(database_url) -> None:
    rows = make_rows(random.Random(16), 3)
    with psycopg.connect(database_url) as conn, pytest.raises(ValueError, match="autocommit"):
        write_batch(conn, rows, stream="s")


def test_the_binary_copys_types_are_the_tables(db) -> None:
    for column, name in zip(COLUMNS, COPY_TYPES, strict=True):
        row = db.execute(
            "SELECT atttypid = %s::regtype FROM pg_attribute"
            " WHERE attrelid = 'ai_call_logs'::regclass AND attname = %s",
            (name, column),
        ).fetchone()
        assert row == (True,), f"{column} is not {name} in ai_call_logs"


def _awkward_rows() -> list:  # type: ignore[type-arg]
    """Rows with what text and binary write differently: escapes, offsets, long decimals."""
    rows = make_rows(random.Random(17), 40)
    ist = timezone(timedelta(hours=5, minutes=30))
    texts = ["tab\there", "new\nline", "back\\slash", 'quote"d', "émoji 🤖", "\\N", "NULL"]
    out = []
    for i, row in enumerate(rows):
        text = texts[i % len(texts)]
        job = uuid.UUID(int=i + 1)
        out.append(
            row._replace(
                id=str(uuid.UUID(row.id)).upper() if i % 3 == 0 else row.id,
                timestamp=datetime(2025, 3, 30, 23, 59, 59, 999_999, tzinfo=ist)
                + timedelta(minutes=i),
                job_id=job if i % 2 else str(job),
                job_key=f"upload {text}",
                task=f"classification {text}",
                image_id=text if i % 4 == 0 else None,
                # More digits than NUMERIC(18, 12) keeps: both ways round them the same.
                cost=Decimal("0.00012345678901234567") * (i + 1) if i % 5 else row.cost,
                cost_source="catalog" if i % 5 else row.cost_source,
                confidence_breakdown='{"text_clarity": 0.5, "n": [1, 2.5e-7]}',
                request_data=orjson.dumps({"prompt": text, "nested": {"k": [None, True]}}).decode(),
                response_data='{"big": 123456789012345678901234567890, "s": "\\u00e9"}',
                error_message=text,
                ingest_notes='{"request_data": "truncated to 10000 characters"}',
                service=text,
            )
        )
    return out


def test_the_binary_copy_stores_what_postgres_reads_from_text(db) -> None:
    rows = _awkward_rows()
    assert write_batch(db, rows, stream="s") == len(rows)
    # The same rows as text, parsed by Postgres itself: what the table held before.
    columns = ", ".join(COLUMNS)
    db.execute("CREATE TEMP TABLE from_text (LIKE ai_call_logs)")
    with db.cursor() as cur, cur.copy(f"COPY from_text ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    binary = db.execute(f"SELECT {columns} FROM ai_call_logs ORDER BY id").fetchall()
    text = db.execute(f"SELECT {columns} FROM from_text ORDER BY id").fetchall()
    assert binary == text
    costs = {r[0] for r in db.execute("SELECT cost::text FROM ai_call_logs WHERE cost > 0.0001")}
    # Row 1: 2 * 0.00012345678901234567 = 0.00024691357802469134, rounded to the column's 12.
    assert "0.000246913578" in costs


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("cost", 0.5, "float"),
        ("id", "not-a-uuid", "non-hexadecimal"),
        ("id", "1234", "is not a UUID"),
        ("request_data", {"prompt": "a dict, not JSON text"}, "encode"),
        ("timestamp", datetime(2025, 3, 31, 1, 2), "offset-naive"),  # text took it as local
    ],
)
def test_a_row_psycopg_cannot_write_is_that_rows_data_error(db, field, value, says) -> None:
    rows = make_rows(random.Random(18), 50)
    refused = [*rows[:20], rows[20]._replace(**{field: value}), *rows[21:]]
    with pytest.raises(psycopg.DataError, match=says):
        write_batch(db, refused, stream="s")
    assert db.info.transaction_status == TransactionStatus.IDLE
    assert db.execute("SELECT count(*) FROM ai_call_logs").fetchone() == (0,)
    assert write_batch(db, rows, stream="s") == 50  # the same connection goes on


def test_the_worker_keeps_a_row_psycopg_cannot_write_as_a_reject_and_stores_the_rest(
    settings, db
) -> None:
    rows = make_rows(random.Random(19), 30)
    rows[7] = rows[7]._replace(cost=0.25)  # a float where NUMERIC wants a Decimal
    batch = PreparedBatch(
        rows=rows,
        ids=[f"1-{i}".encode() for i in range(30)],
        sources=[(f"1-{i}".encode(), b'{"raw": %d}' % i) for i in range(30)],
    )
    worker = Worker(settings, burst=True)
    try:
        assert worker.writer.write(batch) == 29
    finally:
        worker.writer.close()
    (reject,) = batch.rejects
    assert reject.stream_id == "1-7" and reject.raw == b'{"raw": 7}'
    assert reject.reason.startswith("psycopg refused the row") and "float" in reject.reason
    assert db.execute("SELECT count(*) FROM ai_call_logs").fetchone() == (29,)
    stored = db.execute("SELECT stream_id, reason FROM ai_call_rejects").fetchall()
    assert stored == [("1-7", reject.reason)]

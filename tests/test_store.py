"""The worker's write path: COPY straight into the table, staging only when ids are stored."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest
from psycopg.pq import TransactionStatus

from tests.test_rollups import assert_rollups_match, make_rows, stored_rollups
from worker.rollups import LATENCY_BOUNDS
from worker.store import Reject, write_batch


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

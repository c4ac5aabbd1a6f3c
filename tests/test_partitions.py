"""ai_call_logs by month: the conversion keeps every row, any timestamp is stored,
upkeep makes the months ahead, retention drops whole months and the history stays."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from psycopg.conninfo import make_conninfo
from pydantic import SecretStr

from ailedger.api.app import create_app
from ailedger.ops.migrate import migrate
from ailedger.ops.partitions import add_months, ensure_partitions, month_start
from ailedger.ops.retention import run_retention
from bench.partitions import bulk_load, migrate_before, seed, seed_cost
from producer import AICallLogger
from tests.faults import run_ailedger
from worker.store import COLUMNS, write_batch

TOKEN = "t0ken"
NOW = datetime.now(UTC).replace(second=0, microsecond=0)

_FINGERPRINT = """
SELECT count(*), sum(cost), md5(string_agg(id::text || timestamp::text, ',' ORDER BY id))
FROM ai_call_logs
"""


def where(db: psycopg.Connection[Any], call_id: str) -> str:
    """The partition holding the call."""
    row = db.execute(
        "SELECT tableoid::regclass::text FROM ai_call_logs WHERE id = %s", (call_id,)
    ).fetchone()
    assert row, f"call {call_id} was not stored"
    return str(row[0])


def insert(db: psycopg.Connection[Any], when: datetime, cost: str = "0.5") -> str:
    call_id = str(uuid.uuid4())
    db.execute(
        "INSERT INTO ai_call_logs (id, timestamp, task, model, input_tokens, output_tokens,"
        " cost, cost_source, latency_ms) VALUES (%s, %s, 'extract', 'gpt-4o', 100, 10, %s,"
        " 'reported', 900)",
        (call_id, when, Decimal(cost)),
    )
    return call_id


def rollups(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return db.execute("SELECT * FROM ai_call_rollups ORDER BY 1, 2, 3, 4, 5").fetchall()


@pytest.fixture
def pre_012_url(servers: Any) -> Iterator[str]:
    """A database of its own, migrated only up to what came before sql/012."""
    name = f"ailedger_t_{uuid.uuid4().hex[:12]}"
    url = make_conninfo(servers.admin_url, dbname=name)
    migrate_before(url, "012")
    yield url
    with psycopg.connect(servers.admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def test_a_million_row_table_is_converted_without_losing_a_row(
    settings: Any, pre_012_url: str, run_burst: Any
) -> None:
    rows = 1_000_000
    with psycopg.connect(pre_012_url, autocommit=True) as conn:
        assert conn.execute(
            "SELECT relkind FROM pg_class WHERE relname = 'ai_call_logs'"
        ).fetchone() == ("r",)
        with bulk_load(conn):
            seed(conn, rows, start=NOW - timedelta(days=90), step=timedelta(days=90) / rows)
        before = conn.execute(_FINGERPRINT).fetchone()
    assert before is not None
    assert before[:2] == (rows, seed_cost(rows))  # what the seed put there, computed apart

    applied = migrate(pre_012_url)
    assert applied[0] == "012_partitions.sql"  # and whatever came after it

    with psycopg.connect(pre_012_url, autocommit=True) as conn:
        assert conn.execute(_FINGERPRINT).fetchone() == before
        kind, reader = conn.execute(
            "SELECT relkind, has_table_privilege('ailedger_reader', oid, 'SELECT')"
            " FROM pg_class WHERE relname = 'ai_call_logs'"
        ).fetchone() or (None, None)
        assert (kind, reader) == ("p", True)
        parts = [
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'ai_call_logs'::regclass ORDER BY 1"
            )
        ]
        # The old table is one partition; the default one and the months ahead are new.
        assert "ai_call_logs_default" in parts
        assert [p for p in parts if p.startswith("ai_call_logs_before_")]
        assert len(parts) >= 4

    # Writes resume at once: a worker stores new calls (and the rollups count them).
    target = settings.model_copy(update={"database_url": pre_012_url})
    logger = AICallLogger(target.redis_url, stream=target.stream)
    ids = [logger.log(task="extract", model="gpt-4o", cost=0.25) for _ in range(20)]
    assert logger.flush(10)
    logger.close()
    run_burst(database_url=pre_012_url)
    with psycopg.connect(pre_012_url, autocommit=True) as conn:
        stored = conn.execute(
            "SELECT count(*) FROM ai_call_logs WHERE id = ANY(%s)", (ids,)
        ).fetchone()
        assert stored == (20,)
        counted = conn.execute(
            "SELECT sum(calls), sum(cost) FROM ai_call_rollups WHERE grain = 'day'"
            " AND task = 'extract'"
        ).fetchone()
        assert counted == (20, Decimal("5.00"))


def test_calls_from_2019_and_2099_are_stored_and_a_redelivery_adds_nothing(
    settings: Any, db: psycopg.Connection[Any], redis_client: Any, run_burst: Any
) -> None:
    logger = AICallLogger(settings.redis_url, stream=settings.stream)
    late = logger.log(task="extract", model="gpt-4o", cost=1.5,
                      timestamp=datetime(2019, 3, 4, 5, 6, tzinfo=UTC))  # fmt: skip
    current = logger.log(task="extract", model="gpt-4o", cost=0.5)
    assert logger.flush(10)
    logger.close()
    run_burst()
    assert where(db, late) == "ai_call_logs_default"
    assert where(db, current) == f"ai_call_logs_{NOW:%Y_%m}"

    # The same entries delivered again (a worker died between commit and XACK).
    for _, fields in redis_client.xrange(settings.stream):
        redis_client.xadd(settings.stream, fields)
    run_burst()
    assert db.execute("SELECT count(*), sum(cost) FROM ai_call_logs").fetchone() == (
        2,
        Decimal("2.0"),
    )
    day = db.execute("SELECT sum(calls) FROM ai_call_rollups WHERE grain = 'day'").fetchone()
    assert day == (2,)

    # 2099 does not pass the worker's clock check, but a row from then never fails a batch.
    row = db.execute(
        f"SELECT {', '.join(COLUMNS)} FROM ai_call_logs WHERE id = %s", (current,)
    ).fetchone()
    assert row is not None
    future_id = str(uuid.uuid4())
    future = (future_id, datetime(2099, 1, 1, tzinfo=UTC), *row[2:])
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        assert write_batch(conn, [future], stream=settings.stream) == 1
        assert write_batch(conn, [future], stream=settings.stream) == 0
    assert where(db, future_id) == "ai_call_logs_default"


def test_upkeep_creates_months_ahead_and_moves_their_calls_out_of_default(
    settings: Any, db: psycopg.Connection[Any]
) -> None:
    later = add_months(month_start(NOW), 8)
    waiting = [insert(db, later + timedelta(days=d, hours=3)) for d in (0, 9, 20)]
    beyond = insert(db, add_months(later, 3) + timedelta(days=1))
    assert {where(db, c) for c in [*waiting, beyond]} == {"ai_call_logs_default"}
    history = rollups(db)

    report = ensure_partitions(db, months_ahead=1, now=later)
    assert report.created == [f"ai_call_logs_{later:%Y_%m}",
                              f"ai_call_logs_{add_months(later, 1):%Y_%m}"]  # fmt: skip
    assert report.moved_from_default == 3
    assert {where(db, c) for c in waiting} == {f"ai_call_logs_{later:%Y_%m}"}
    assert where(db, beyond) == "ai_call_logs_default"
    assert rollups(db) == history  # moving rows between partitions counts nothing twice
    assert ensure_partitions(db, months_ahead=1, now=later).created == []

    # The CLI, as an operator runs it: from this month, three ahead by default, plus two.
    done = run_ailedger(settings, "partitions", "upkeep", "--months-ahead", "5")
    assert done.returncode == 0, done.stderr
    created = [f"ai_call_logs_{add_months(month_start(NOW), m):%Y_%m}" for m in (4, 5)]
    assert all(name in done.stdout for name in created), done.stdout
    listed = run_ailedger(settings, "partitions", "list")
    assert listed.returncode == 0, listed.stderr
    assert created[1] in listed.stdout and "ai_call_logs_default" in listed.stdout


def test_retention_drops_a_wholly_expired_month_and_keeps_the_totals(
    settings: Any, db: psycopg.Connection[Any]
) -> None:
    old_month = month_start(NOW - timedelta(days=200))
    in_old_month = [insert(db, old_month + timedelta(days=d), "0.25") for d in (1, 2, 3)]
    partly = insert(db, NOW - timedelta(days=160), "0.5")  # no month partition: default
    kept = [insert(db, NOW - timedelta(days=d), "1") for d in (100, 2)]
    assert ensure_partitions(db, months_ahead=0, now=old_month).moved_from_default == 3
    assert {where(db, c) for c in in_old_month} == {f"ai_call_logs_{old_month:%Y_%m}"}
    history = rollups(db)

    def totals() -> dict[str, Any]:
        app = create_app(settings.model_copy(update={"api_token": SecretStr(TOKEN)}))
        with TestClient(app) as api:
            got = api.get(
                "/api/admin/ai-metrics",
                params={"from": (NOW - timedelta(days=400)).isoformat(), "to": NOW.isoformat()},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
        assert got.status_code == 200, got.text
        return got.json()["totals"]  # type: ignore[no-any-return]

    before = totals()
    assert (before["calls"], Decimal(before["cost"])) == (6, Decimal("3.25"))

    policy = settings.model_copy(update={"retention_rows_days": 150, "retention_batch_size": 1})
    dry = run_retention(db, policy, dry_run=True)
    assert (dry.rows_deleted, dry.partitions_dropped) == (4, [f"ai_call_logs_{old_month:%Y_%m}"])
    assert db.execute("SELECT count(*) FROM ai_call_logs").fetchone() == (6,)

    done = run_retention(db, policy)
    assert (done.rows_deleted, done.partitions_dropped) == (4, [f"ai_call_logs_{old_month:%Y_%m}"])
    assert any("dropped" in line and old_month.strftime("%Y_%m") in line for line in done.lines())
    remaining = {r[0] for r in db.execute("SELECT id::text FROM ai_call_logs")}
    assert remaining == set(kept)
    assert db.execute(
        "SELECT to_regclass(%s)", (f"ai_call_logs_{old_month:%Y_%m}",)
    ).fetchone() == (None,)
    assert rollups(db) == history
    assert totals() == before
    assert partly not in remaining

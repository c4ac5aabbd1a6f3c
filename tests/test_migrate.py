"""`ailedger migrate`: creates the database, applies once, safe to run concurrently."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ailedger.ops.migrate import load_migrations, migrate

SEED_INDEXED = {"job_id", "task", "model", "timestamp", "action"}


@pytest.fixture
def fresh_url(servers) -> Iterator[str]:  # type: ignore[no-untyped-def]
    name = f"ailedger_m_{uuid.uuid4().hex[:10]}"
    yield make_conninfo(servers.admin_url, dbname=name)
    with psycopg.connect(servers.admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def test_creates_missing_database_and_applies_every_migration_once(fresh_url: str) -> None:
    applied = migrate(fresh_url)
    assert applied == [m.name for m in load_migrations()]
    assert migrate(fresh_url) == []
    with psycopg.connect(fresh_url) as conn:
        count = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
        assert count == (len(applied),)


def test_two_processes_at_once_apply_each_migration_once(fresh_url: str) -> None:
    code = "import sys; from ailedger.ops.migrate import migrate; print(len(migrate(sys.argv[1])))"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, fresh_url], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60)[0].strip().splitlines()[-1] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(int(o) for o in outputs) == [0, len(load_migrations())]


def test_table_keeps_the_seed_columns_and_indexes(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        columns = {
            name: (dtype, scale)
            for name, dtype, scale in conn.execute(
                "SELECT column_name, data_type, numeric_scale FROM information_schema.columns"
                " WHERE table_name = 'ai_call_logs'"
            )
        }
        indexed = {
            row[0]
            for row in conn.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a"
                " ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
                " WHERE i.indrelid = 'ai_call_logs'::regclass AND NOT i.indisprimary"
            )
        }
    seed = {
        "id",
        "timestamp",
        "job_id",
        "task",
        "model",
        "input_tokens",
        "output_tokens",
        "cost",
        "latency_ms",
        "confidence_score",
        "confidence_breakdown",
        "action",
        "fallback_reason",
        "request_data",
        "response_data",
        "error_message",
        "created_at",
    }
    assert seed <= set(columns)
    assert columns["cost"][1] >= 10  # at least 10 decimal places
    assert indexed >= SEED_INDEXED

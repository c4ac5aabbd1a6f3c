"""Test servers and per-test isolation.

Tests use the machine's Redis and Postgres (or AILEDGER_TEST_REDIS_URL /
AILEDGER_TEST_DATABASE_URL). Where none answers — a fresh laptop — the suite starts
embedded ones under .ailedger/test-servers. Each test gets its own stream key and
its own database, cloned from a migrated template, so tests never see each other.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ailedger.ops.migrate import migrate
from ailedger.settings import Settings
from worker.consumer import Worker

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Servers:
    redis_url: str
    admin_url: str  # a Postgres URL to the maintenance database, for CREATE/DROP DATABASE


def _answers(redis_url: str, database_url: str) -> tuple[bool, bool]:
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1).ping()
        redis_ok = True
    except redis.RedisError:
        redis_ok = False
    try:
        psycopg.connect(database_url, connect_timeout=2).close()
        pg_ok = True
    except psycopg.Error:
        pg_ok = False
    return redis_ok, pg_ok


@pytest.fixture(autouse=True)
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's producers spool into their own folder, never a shared default one."""
    folder = tmp_path / "spool"
    monkeypatch.setenv("AILEDGER_SPOOL_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    redis_url = os.environ.get("AILEDGER_TEST_REDIS_URL", DEFAULT_REDIS)
    admin_url = os.environ.get("AILEDGER_TEST_DATABASE_URL", DEFAULT_POSTGRES)
    redis_ok, pg_ok = _answers(redis_url, admin_url)
    if redis_ok and pg_ok:
        yield Servers(redis_url, admin_url)
        return
    from ailedger.demo.embedded import EmbeddedServers

    embedded = EmbeddedServers(
        Path(__file__).resolve().parent.parent / ".ailedger" / "test-servers"
    )
    embedded.start()
    try:
        yield Servers(
            redis_url if redis_ok else embedded.redis_url,
            admin_url if pg_ok else make_conninfo(embedded.database_url, dbname="postgres"),
        )
    finally:
        embedded.stop()


@pytest.fixture(scope="session")
def template_db(servers: Servers) -> Iterator[str]:
    """A migrated database that each test's database is cloned from."""
    name = f"ailedger_tpl_{uuid.uuid4().hex[:10]}"
    url = make_conninfo(servers.admin_url, dbname=name)
    migrate(url)  # also proves migrate creates a missing database
    yield name
    _drop_database(servers.admin_url, name)


def _drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def database_url(servers: Servers, template_db: str) -> Iterator[str]:
    name = f"ailedger_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(servers.admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_db)
            )
        )
    yield make_conninfo(servers.admin_url, dbname=name)
    _drop_database(servers.admin_url, name)


@pytest.fixture
def stream(servers: Servers) -> Iterator[str]:
    key = f"ailedger-test:{uuid.uuid4().hex[:12]}:events"
    yield key
    client = redis.Redis.from_url(servers.redis_url)
    prefix = key.rsplit(":", 1)[0]
    # Its own keys, and RQ's for queues and cron jobs named after it (rq:finished:<stream>:
    # maintenance, rq:cron_job:<stream>:<job>:jobs, …), then its names in RQ's global sets.
    keys = list(client.scan_iter(match=f"*{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    mine = prefix.encode()
    if queues := [q for q in client.sscan_iter("rq:queues") if mine in q]:
        client.srem("rq:queues", *queues)
    if crons := [name for name, _ in client.zscan_iter("rq:cron_jobs") if mine in name]:
        client.zrem("rq:cron_jobs", *crons)
    client.close()


@pytest.fixture
def redis_client(servers: Servers) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(servers.redis_url)
    yield client
    client.close()


@pytest.fixture
def settings(servers: Servers, database_url: str, stream: str) -> Settings:
    return Settings(
        redis_url=servers.redis_url,
        database_url=database_url,
        stream=stream,
        block_ms=200,
        claim_every_s=0.5,
    )


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def run_burst(settings: Settings) -> Callable[..., Worker]:
    """Run one worker in this process until the stream is drained (arq's ``burst=True``)."""

    def run(**overrides: Any) -> Worker:
        worker = Worker(
            settings.model_copy(update=overrides) if overrides else settings, burst=True
        )
        worker.run()
        return worker

    return run

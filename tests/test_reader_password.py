"""The API's read-only role logs in with a password, on a Postgres that asks for one.

Over the network the Postgres image asks every role for a password; ``migrate`` used
to leave ``ailedger_reader`` without one, so the API answered 503 to everything
(``fe_sendauth: no password supplied``). Here a private cluster asks the reader for
its password (scram-sha-256), as the compose stack's Postgres does.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.conninfo import make_conninfo

from ailedger.api.app import create_app, reader_url
from ailedger.settings import Settings
from tests.faults import PostgresServer, private_postgres_cluster

#: Quotes, a backslash and a semicolon: the password must reach Postgres as it is.
PASSWORD = 'it\'s a "reader" \\ pass; DROP ROLE x'


@pytest.fixture
def guarded_postgres() -> Iterator[PostgresServer]:
    """A private cluster where ailedger_reader must give its password over TCP."""
    with private_postgres_cluster(
        hba_first="host all ailedger_reader 127.0.0.1/32 scram-sha-256"
    ) as server:
        yield server


def ailedger_migrate(database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ailedger.cli", "migrate"],
        env={"PATH": "/usr/bin:/bin", "AILEDGER_DATABASE_URL": database_url, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def can_read(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT count(*) FROM ai_call_logs").fetchone()
            return True
    except psycopg.OperationalError:
        return False


def test_migrate_sets_the_reader_password_and_the_api_logs_in_with_it(
    guarded_postgres: PostgresServer, tmp_path: Path
) -> None:
    url = make_conninfo(guarded_postgres.admin_url, dbname="ailedger")
    bare = ailedger_migrate(url)
    assert bare.returncode == 0, bare.stderr
    reader = Settings(database_url=url)
    assert not can_read(reader_url(reader))  # the symptom: no password, no login

    result = ailedger_migrate(url, AILEDGER_READER_PASSWORD=PASSWORD)
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stdout + result.stderr

    settings = Settings(database_url=url, reader_password=PASSWORD)
    assert can_read(reader_url(settings))
    wrong = Settings(database_url=url, reader_password=PASSWORD + "x")
    assert not can_read(reader_url(wrong))
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200

    # A secret file (Docker/Kubernetes secrets) works the same, its trailing newline aside.
    secret = tmp_path / "reader_password"
    secret.write_text(PASSWORD + "\n")
    from_file = Settings(database_url=url, reader_password_file=secret)
    assert can_read(reader_url(from_file))


def test_rotating_the_password_is_running_migrate_again(guarded_postgres: PostgresServer) -> None:
    url = make_conninfo(guarded_postgres.admin_url, dbname="ailedger")
    assert ailedger_migrate(url, AILEDGER_READER_PASSWORD="first").returncode == 0
    assert ailedger_migrate(url, AILEDGER_READER_PASSWORD="second").returncode == 0
    assert not can_read(reader_url(Settings(database_url=url, reader_password="first")))
    assert can_read(reader_url(Settings(database_url=url, reader_password="second")))


def test_a_missing_password_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = ailedger_migrate(
        "postgresql://127.0.0.1:1/x", AILEDGER_READER_PASSWORD_FILE=str(missing)
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: AILEDGER_READER_PASSWORD_FILE={missing}: cannot read it (No such file or "
        "directory); mount the secret there or unset the variable"
    ]

"""What a person reads when a command cannot run: one line, the right exit code, no traceback.

Exit 2: the input is wrong (a setting, a flag, an argument); exit 1: a server is away or
not ready. Every case runs the real ``ailedger`` in a subprocess, as a person would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from pydantic import ValidationError

from ailedger.settings import Settings
from tests.faults import free_port


def ailedger(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``ailedger ARGS`` in a shell where only ``env`` sets AILEDGER_* variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AILEDGER_")}
    return subprocess.run(
        [sys.executable, "-m", "ailedger.cli", *args],
        env={**clean, "AILEDGER_LOG_JSON": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def the_one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The command's whole output, which must be a single line (and never a traceback)."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    return lines[0]


@pytest.fixture
def empty_database(servers) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A database that exists but was never migrated."""
    name = f"ailedger_e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(servers.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield make_conninfo(servers.admin_url, dbname=name)
    with psycopg.connect(servers.admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


# -- a server is away or not ready: exit 1 --------------------------------------------------------


def test_migrate_with_postgres_unreachable() -> None:
    result = ailedger("migrate", AILEDGER_DATABASE_URL=f"postgresql://127.0.0.1:{free_port()}/x")
    line = the_one_line(result)
    assert result.returncode == 1
    assert "cannot reach Postgres" in line and "AILEDGER_DATABASE_URL" in line


def test_dlq_list_on_a_missing_database(servers) -> None:  # type: ignore[no-untyped-def]
    missing = make_conninfo(servers.admin_url, dbname=f"ailedger_none_{uuid.uuid4().hex[:8]}")
    result = ailedger("dlq", "list", AILEDGER_DATABASE_URL=missing)
    line = the_one_line(result)
    assert result.returncode == 1
    assert "does not exist" in line and "`ailedger migrate`" in line


def test_dlq_list_on_a_database_never_migrated(empty_database: str) -> None:
    result = ailedger("dlq", "list", AILEDGER_DATABASE_URL=empty_database)
    line = the_one_line(result)
    assert result.returncode == 1
    assert "ai_call_rejects" in line and "`ailedger migrate`" in line


# -- the input is wrong: exit 2, naming the variable or flag ---------------------------------------


def test_malformed_database_url_names_the_variable_and_keeps_the_password_out() -> None:
    result = ailedger("migrate", AILEDGER_DATABASE_URL="postgresql://ailedger:s3cret@[::1/db")
    line = the_one_line(result)
    assert result.returncode == 2
    assert "AILEDGER_DATABASE_URL" in line and "malformed" in line
    assert "s3cret" not in line


def test_a_redis_url_with_an_http_scheme(stream: str) -> None:
    result = ailedger(
        "status", AILEDGER_REDIS_URL="http://127.0.0.1:6379/0", AILEDGER_STREAM=stream
    )
    line = the_one_line(result)
    assert result.returncode == 2
    assert "AILEDGER_REDIS_URL" in line and "redis://" in line


def test_serve_on_a_port_out_of_range() -> None:
    result = ailedger("serve", "--port", "99999")
    line = the_one_line(result)
    assert result.returncode == 2
    assert "--port" in line and "65535" in line


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AILEDGER_BATCH_SIZE", "abc"),
        ("AILEDGER_DEFAULT_THRESHOLD", "1.5"),
        ("AILEDGER_TASK_THRESHOLDS", '{"material_classification": 1.2}'),
        ("AILEDGER_CONFIDENCE_WEIGHTS", '{"model_confidence": -0.4, "completeness": 0.2}'),
        ("AILEDGER_CONFIDENCE_WEIGHTS", '{"model_confidence": 0, "completeness": 0}'),
    ],
)
def test_a_bad_setting_names_its_variable(variable: str, value: str, stream: str) -> None:
    result = ailedger("status", "--json", **{variable: value, "AILEDGER_STREAM": stream})
    line = the_one_line(result)
    assert result.returncode == 2
    assert line.startswith(f"error: {variable}") and f"unset {variable}" in line


def test_two_bad_settings_one_line_each(stream: str) -> None:
    result = ailedger(
        "status", AILEDGER_BATCH_SIZE="abc", AILEDGER_DEFAULT_THRESHOLD="-1", AILEDGER_STREAM=stream
    )
    assert result.returncode == 2
    lines = sorted(result.stderr.splitlines())
    assert [line.split(":")[1].split("=")[0].strip() for line in lines] == [
        "AILEDGER_BATCH_SIZE",
        "AILEDGER_DEFAULT_THRESHOLD",
    ]


def test_reprice_since_after_until_is_refused(stream: str) -> None:
    result = ailedger(
        "reprice", "--since", "2026-02-01", "--until", "2026-01-01", AILEDGER_STREAM=stream
    )
    line = the_one_line(result)
    assert result.returncode == 2
    assert "--since" in line and "--until" in line


def test_spool_replay_of_a_folder_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-spool"
    result = ailedger("spool", "replay", str(missing))
    line = the_one_line(result)
    assert result.returncode == 2
    assert str(missing) in line and "does not exist" in line
    assert not missing.exists()  # and nothing was created there


def test_spool_replay_of_a_file(tmp_path: Path) -> None:
    afile = tmp_path / "events.log"
    afile.write_text("not a spool")
    result = ailedger("spool", "replay", str(afile))
    assert result.returncode == 2
    assert "is not a folder" in the_one_line(result)


# -- the ranges, as a program embedding ailedger sees them -----------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"default_threshold": Decimal("1.5")},
        {"default_threshold": Decimal("-0.1")},
        {"task_thresholds": {"image_validation": Decimal("1.01")}},
        {"confidence_weights": {"model_confidence": Decimal("-1"), "completeness": 2}},
        {"confidence_weights": {}},
        {"redis_url": "localhost:6379"},
        {"database_url": "mysql://127.0.0.1/ailedger"},
        {"database_url": "postgresql://127.0.0.1:70000/ailedger"},
    ],
)
def test_settings_refuse_values_out_of_range(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "good",
    [
        {"default_threshold": Decimal(0), "task_thresholds": {"t": Decimal(1)}},
        {"confidence_weights": {"model_confidence": Decimal(0), "validation": Decimal("0.1")}},
        {"redis_url": "rediss://:pw@redis.internal:6380/2"},
        {"redis_url": "unix:///run/redis.sock"},
        {"database_url": "postgres://u:p@db:5432/ailedger"},
        {"database_url": "host=/run/postgresql dbname=ailedger"},
    ],
)
def test_settings_accept_the_edges_of_each_range(good: dict[str, object]) -> None:
    Settings(**good)  # type: ignore[arg-type]

"""Versioned schema migrations: apply the numbered files in sql/ that are not yet applied.

Safe to run twice and from several processes at once: a session advisory lock
serialises runners, each file applies in its own transaction together with its
row in ``schema_migrations``, and a missing database is created first.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import structlog
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ailedger.ops.partitions import ensure_partitions, prepare_conversion
from worker.errors import MigrationError

log = structlog.get_logger("ailedger.migrate")

#: Arbitrary but fixed: the advisory lock every migrating process takes.
_LOCK_KEY = 0x41494C45  # "AILE"
_NAME = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")


#: Steps run before a migration, outside any transaction (CREATE INDEX CONCURRENTLY,
#: VALIDATE CONSTRAINT under a weak lock), so the migration's own locks stay short.
_BEFORE: dict[str, Callable[[psycopg.Connection[Any]], None]] = {"012": prepare_conversion}


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def sql_dir() -> Path:
    """Where the migrations live: sql/ in a checkout, ailedger/_sql in an installed wheel."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent / "sql", package / "_sql"):
        if candidate.is_dir():
            return candidate
    raise MigrationError(f"no sql/ folder found next to {package}; reinstall ailedger")


def load_migrations(folder: Path | None = None) -> list[Migration]:
    folder = folder or sql_dir()
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(
                f"{path.name}: migration files are named NNN_description.sql; rename it"
            )
        found.append(Migration(match.group(1), path.name, path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations in {folder} share a version number: {versions}")
    return found


def ensure_database(database_url: str) -> bool:
    """Create the database named in ``database_url`` if it is missing; True if created."""
    params = conninfo_to_dict(database_url)
    dbname = params.get("dbname") or "postgres"
    try:
        psycopg.connect(database_url, connect_timeout=10).close()
        return False
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise
    admin = make_conninfo(database_url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(dbname))))
        except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            # Another process created it first (two CREATE DATABASE at once can
            # surface as a unique violation on pg_database instead).
            return False
    log.info("database created", database=dbname)
    return True


def migrate(
    database_url: str,
    folder: Path | None = None,
    *,
    reader_password: str | None = None,
    reader_role: str = "ailedger_reader",
) -> list[str]:
    """Apply pending migrations; returns the names applied by this call.

    With ``reader_password``, also sets the password the read-only role (which
    sql/005_reader_role.sql creates) logs in with, on every run, so changing the
    secret and running `migrate` again rotates it.
    """
    migrations = load_migrations(folder)
    ensure_database(database_url)
    applied_now: list[str] = []
    with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
        # Polled, not waited for: a runner blocked inside pg_advisory_lock holds a
        # snapshot, which the holder's CREATE INDEX CONCURRENTLY would wait for: a deadlock.
        while conn.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_KEY,)).fetchone() != (True,):
            time.sleep(0.2)
        try:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version TEXT PRIMARY KEY,
                       name TEXT NOT NULL,
                       checksum TEXT NOT NULL,
                       applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW())"""
            )
            done: dict[str, str] = dict(
                conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
            )
            for migration in migrations:
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        log.warning(
                            "applied migration differs from its file; not re-applied",
                            migration=migration.name,
                        )
                    continue
                try:
                    if migration.version in _BEFORE:
                        _BEFORE[migration.version](conn)
                    with conn.transaction():
                        conn.execute(migration.sql.encode())
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum)"
                            " VALUES (%s, %s, %s)",
                            (migration.version, migration.name, migration.checksum),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(
                        f"{migration.name} failed: {exc}; nothing of it was applied. "
                        "Fix the file or the database and run `ailedger migrate` again."
                    ) from None
                applied_now.append(migration.name)
                log.info("migration applied", migration=migration.name)
            if reader_password:
                set_password(conn, reader_role, reader_password)
            ensure_partitions(conn)  # this month and the next ones, once the table is partitioned
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now


def set_password(conn: psycopg.Connection[Any], role: str, password: str) -> None:
    """``ALTER ROLE role PASSWORD …`` with a SCRAM verifier made here, never the password.

    The verifier is computed by libpq on this side, so the password itself appears in
    no statement Postgres could log; the verifier is quoted as a literal, never pasted.
    """
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode()).decode()
    try:
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier))
        )
    except psycopg.Error as exc:
        raise MigrationError(
            f"could not set the password of {role}: {str(exc).splitlines()[0]}; run `ailedger "
            "migrate` as a role that may alter it (its creator or a superuser), or set it once "
            f"as an administrator: ALTER ROLE {role} PASSWORD '…'"
        ) from None
    log.info("reader password set", role=role)

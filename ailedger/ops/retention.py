"""Retention: drop old payloads, old raw rows and old dead letters; keep the rollups.

Three policies (settings, None: keep forever):

- ``retention_payload_days`` (30): ``request_data`` and ``response_data`` of calls
  older than that become NULL; everything that was counted stays;
- ``retention_rows_days`` (off): raw rows older than that are deleted; per-job and
  per-image costs of those calls go with them, the rollups (the API's totals, cost
  over time) stay. A monthly partition that lies wholly before the cutoff is dropped
  whole (sql/012_partitions.sql): no DELETE, nothing left for VACUUM; only the rows
  of the partly expired month (and any in the DEFAULT partition) are deleted;
- ``retention_dead_letter_days`` (30): dead letters last seen before that are purged
  from ``ai_call_rejects`` and the dead-letter stream.

Each statement changes at most ``retention_batch_size`` rows in its own transaction,
so locks stay short, with ``SET LOCAL ailedger.retention = 'on'``: the rollup
triggers do not run for it (sql/010_retention.sql), so retention never moves a rollup.
A dry run counts what would go and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import redis
import structlog

from ailedger.ops.deadletters import purge
from ailedger.ops.partitions import drop_partitions_before
from ailedger.settings import Settings

log = structlog.get_logger("ailedger.retention")


@dataclass(slots=True)
class RetentionReport:
    dry_run: bool
    payloads_dropped: int = 0
    rows_deleted: int = 0
    partitions_dropped: list[str] = field(default_factory=list)
    dead_letters_purged: int = 0
    payload_cutoff: datetime | None = None
    rows_cutoff: datetime | None = None
    dead_letter_cutoff: datetime | None = None

    def lines(self) -> list[str]:
        """What was removed (or, in a dry run, would be), one line per policy."""
        out = []
        for label, (done, would), count, noun, cutoff in (
            ("payloads", ("dropped from", "would drop from"), self.payloads_dropped, "call(s)",
             self.payload_cutoff),
            ("raw rows", ("deleted", "would delete"), self.rows_deleted, "call(s)",
             self.rows_cutoff),
            ("dead letters", ("purged", "would purge"), self.dead_letters_purged,
             "dead letter(s)", self.dead_letter_cutoff),
        ):  # fmt: skip
            if cutoff is None:
                out.append(f"{label}: kept forever (policy off)")
                continue
            verb = would if self.dry_run else done
            out.append(f"{label}: {verb} {count} {noun} older than {cutoff:%Y-%m-%d %H:%M} UTC")
        if self.partitions_dropped:
            verb = "would drop" if self.dry_run else "dropped"
            out.append(f"partitions: {verb} {', '.join(self.partitions_dropped)} whole")
        return out


_PAYLOADS = """
SELECT id, timestamp FROM ai_call_logs
WHERE timestamp >= %(lo)s AND timestamp < %(cutoff)s
  AND (request_data IS NOT NULL OR response_data IS NOT NULL)
ORDER BY timestamp LIMIT %(batch)s
"""


def _progress(conn: psycopg.Connection[Any], policy: str) -> datetime:
    row = conn.execute(
        "SELECT done_until FROM retention_progress WHERE policy = %s", (policy,)
    ).fetchone()
    # A week of margin: events a stopped producer spooled and replays late, with old
    # timestamps, still lose their payloads on a later run.
    return row[0] - timedelta(days=7) if row else datetime.min.replace(tzinfo=UTC)


def _record(conn: psycopg.Connection[Any], policy: str, until: datetime) -> None:
    conn.execute(
        "INSERT INTO retention_progress (policy, done_until) VALUES (%s, %s)"
        " ON CONFLICT (policy) DO UPDATE SET done_until = GREATEST("
        " retention_progress.done_until, EXCLUDED.done_until)",
        (policy, until),
    )


def _count(conn: psycopg.Connection[Any], rows: str, params: tuple[Any, ...]) -> int:
    row = conn.execute(f"SELECT count(*) FROM {rows}".encode(), params).fetchone()
    return int(row[0]) if row else 0


def drop_payloads(
    conn: psycopg.Connection[Any], cutoff: datetime, *, batch: int, dry_run: bool
) -> int:
    lo = _progress(conn, "payloads")
    if dry_run:
        return _count(
            conn,
            "ai_call_logs WHERE timestamp >= %s AND timestamp < %s"
            " AND (request_data IS NOT NULL OR response_data IS NOT NULL)",
            (lo, cutoff),
        )
    total = 0
    while True:
        with conn.transaction():
            conn.execute("SET LOCAL ailedger.retention = 'on'")
            rows = conn.execute(_PAYLOADS, {"lo": lo, "cutoff": cutoff, "batch": batch}).fetchall()
            if not rows:
                _record(conn, "payloads", cutoff)
                return total
            conn.execute(
                "UPDATE ai_call_logs SET request_data = NULL, response_data = NULL"
                " WHERE id = ANY(%s) AND timestamp >= %s AND timestamp <= %s",
                ([r[0] for r in rows], rows[0][1], rows[-1][1]),  # the bounds prune partitions
            )
            total += len(rows)
            lo = rows[-1][1]  # ties at lo are filtered by the NOT NULL next time


def delete_rows(
    conn: psycopg.Connection[Any], cutoff: datetime, *, batch: int, dry_run: bool
) -> tuple[int, list[str]]:
    """Delete the raw rows before ``cutoff``; returns (rows, partitions dropped whole)."""
    total, dropped = drop_partitions_before(conn, cutoff, dry_run=dry_run)
    if dry_run:
        return _count(conn, "ai_call_logs WHERE timestamp < %s", (cutoff,)), dropped
    while True:
        with conn.transaction():
            conn.execute("SET LOCAL ailedger.retention = 'on'")
            # (id, timestamp): the key, and the timestamp lets Postgres look in one partition.
            cursor = conn.execute(
                "DELETE FROM ai_call_logs WHERE (id, timestamp) IN (SELECT id, timestamp"
                " FROM ai_call_logs WHERE timestamp < %s ORDER BY timestamp LIMIT %s)",
                (cutoff, batch),
            )
        total += cursor.rowcount
        if cursor.rowcount < batch:
            return total, dropped


def run_retention(
    conn: psycopg.Connection[Any],
    settings: Settings,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    redis_client: redis.Redis | None = None,
) -> RetentionReport:
    """Apply every retention policy once (``conn`` in autocommit); returns what went."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    report = RetentionReport(dry_run=dry_run)
    batch = settings.retention_batch_size
    if settings.retention_payload_days is not None:
        report.payload_cutoff = now - timedelta(days=settings.retention_payload_days)
        report.payloads_dropped = drop_payloads(
            conn, report.payload_cutoff, batch=batch, dry_run=dry_run
        )
    if settings.retention_rows_days is not None:
        report.rows_cutoff = now - timedelta(days=settings.retention_rows_days)
        report.rows_deleted, report.partitions_dropped = delete_rows(
            conn, report.rows_cutoff, batch=batch, dry_run=dry_run
        )
    if settings.retention_dead_letter_days is not None:
        age = timedelta(days=settings.retention_dead_letter_days)
        report.dead_letter_cutoff = now - age
        if dry_run:
            report.dead_letters_purged = _count(
                conn, "ai_call_rejects WHERE last_seen < %s", (report.dead_letter_cutoff,)
            )
        else:
            from producer.connection import connect

            client = redis_client or connect(settings.redis_url)
            report.dead_letters_purged = purge(conn, client, settings.stream, older_than=age)
    log.info(
        "retention done" if not dry_run else "retention dry run",
        payloads=report.payloads_dropped,
        rows=report.rows_deleted,
        dead_letters=report.dead_letters_purged,
    )
    return report

"""Monthly partitions of ``ai_call_logs``: the conversion's preparation, upkeep, drops.

sql/012_partitions.sql turns ``ai_call_logs`` into a table partitioned by month on
``timestamp``, with a DEFAULT partition for whatever no month covers. This module:

- :func:`prepare_conversion` runs before that migration, outside any transaction: it
  builds the unique index ``(id, timestamp)`` CONCURRENTLY and validates a bound check
  with only a SHARE UPDATE EXCLUSIVE lock, so the migration's exclusive lock lasts only
  as long as catalog changes;
- :func:`ensure_partitions` (``ailedger partitions upkeep``, hourly on ``ailedger jobs``,
  after every ``ailedger migrate``) creates this month's partition and the next ones,
  moving rows the DEFAULT partition holds for such a month into it first;
- :func:`drop_partitions_before` lets retention drop the months that lie wholly before
  its cutoff, instead of deleting their rows one by one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
import structlog
from psycopg import sql

from worker.errors import MigrationError

log = structlog.get_logger("ailedger.partitions")

TABLE = "ai_call_logs"
UNIQUE_INDEX = "ai_call_logs_id_timestamp_key"
BOUND_CHECK = "ai_call_logs_partition_bound"
#: How long upkeep and retention wait for a lock before giving up until their next run,
#: rather than queueing every writer behind them while a long query holds the table.
LOCK_TIMEOUT = "10s"

_PARTITIONS = """
SELECT c.relname,
       CASE WHEN m[1] <> 'MINVALUE' THEN btrim(m[1], '''')::timestamptz END,
       CASE WHEN m[2] <> 'MAXVALUE' THEN btrim(m[2], '''')::timestamptz END,
       pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
LEFT JOIN LATERAL regexp_match(
    pg_get_expr(c.relpartbound, c.oid), 'FROM \\((.+)\\) TO \\((.+)\\)'
) m ON TRUE
WHERE i.inhparent = to_regclass(%s)
ORDER BY 2 NULLS FIRST, 1
"""


@dataclass(frozen=True, slots=True)
class Partition:
    """One partition of ai_call_logs: [lower, upper), None meaning unbounded."""

    name: str
    lower: datetime | None
    upper: datetime | None
    is_default: bool = False

    def overlaps(self, lower: datetime, upper: datetime) -> bool:
        if self.is_default:
            return False
        return (self.lower is None or self.lower < upper) and (
            self.upper is None or lower < self.upper
        )


@dataclass(slots=True)
class UpkeepReport:
    created: list[str] = field(default_factory=list)
    moved_from_default: int = 0

    def lines(self) -> list[str]:
        if not self.created:
            return ["partitions: every month needed already has one"]
        return [
            f"partitions: created {', '.join(self.created)};"
            f" moved {self.moved_from_default} call(s) out of the default partition"
        ]


def is_partitioned(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (TABLE,))
    found = row.fetchone()
    return found is not None and found[0] == "p"


def list_partitions(conn: psycopg.Connection[Any]) -> list[Partition]:
    """The partitions of ai_call_logs, oldest first (none while it is a plain table)."""
    return [Partition(*row) for row in conn.execute(_PARTITIONS, (TABLE,)).fetchall()]


def month_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def add_months(start: datetime, months: int) -> datetime:
    index = start.year * 12 + start.month - 1 + months
    return start.replace(year=index // 12, month=index % 12 + 1)


def partition_name(lower: datetime) -> str:
    return f"{TABLE}_{lower:%Y_%m}"


# -- before sql/012 ------------------------------------------------------------------------


def prepare_conversion(conn: psycopg.Connection[Any]) -> None:
    """Make sql/012's exclusive lock short; ``conn`` in autocommit, writers keep writing.

    Builds the unique index (id, timestamp) CONCURRENTLY and adds ``CHECK (timestamp <
    bound)`` NOT VALID, then VALIDATEs it (SHARE UPDATE EXCLUSIVE: inserts go on). The
    bound is a month boundary at least a week ahead and past the newest row, so every
    insert until the migration commits still passes it. Safe to run again after a failure.
    """
    if conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone() == (None,):
        return  # before sql/001: nothing to prepare
    if is_partitioned(conn):
        return
    index = conn.execute(
        "SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass(%s)",
        (UNIQUE_INDEX,),
    ).fetchone()
    if index == (False,):  # a concurrent build that was interrupted
        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY {}").format(sql.Identifier(UNIQUE_INDEX)))
    if index != (True,):
        log.info("building the (id, timestamp) index concurrently", index=UNIQUE_INDEX)
        conn.execute(
            sql.SQL("CREATE UNIQUE INDEX CONCURRENTLY {} ON {} (id, timestamp)").format(
                sql.Identifier(UNIQUE_INDEX), sql.Identifier(TABLE)
            )
        )
    check = conn.execute(
        "SELECT (regexp_match(pg_get_constraintdef(oid), '''([^'']+)'''))[1]::timestamptz"
        " >= now() + interval '7 days', convalidated FROM pg_constraint"
        " WHERE conrelid = to_regclass(%s) AND conname = %s",
        (TABLE, BOUND_CHECK),
    ).fetchone()
    if check is None or not check[0]:
        with conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            bound = conn.execute(
                "SELECT greatest("
                " date_trunc('month', now() + interval '7 days', 'UTC') + interval '1 month',"
                " date_trunc('month', max(timestamp), 'UTC') + interval '1 month')"
                f" FROM {TABLE}"
            ).fetchone()
            conn.execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT IF EXISTS {BOUND_CHECK}")
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK (timestamp < {}) NOT VALID").format(
                    sql.Identifier(TABLE),
                    sql.Identifier(BOUND_CHECK),
                    sql.Literal(bound[0] if bound else None),
                )
            )
    if check is None or not (check[0] and check[1]):
        log.info("validating the partition bound", constraint=BOUND_CHECK)
        conn.execute(f"ALTER TABLE {TABLE} VALIDATE CONSTRAINT {BOUND_CHECK}")


# -- upkeep --------------------------------------------------------------------------------


def _columns(conn: psycopg.Connection[Any]) -> sql.Composed:
    names = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s)"
        " AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (TABLE,),
    ).fetchall()
    return sql.SQL(", ").join(sql.Identifier(n[0]) for n in names)


def create_month(
    conn: psycopg.Connection[Any], lower: datetime, default: str | None
) -> tuple[str, int]:
    """Create the partition of the month starting at ``lower``; returns (name, rows moved).

    In one transaction: a plain table shaped like the parent, the month's rows moved
    into it from the DEFAULT partition, then ATTACH (SHARE UPDATE EXCLUSIVE on the
    parent: inserts into other months go on; the default partition waits).
    """
    name = partition_name(lower)
    upper = add_months(lower, 1)
    new, parent = sql.Identifier(name), sql.Identifier(TABLE)
    moved = 0
    with conn.transaction():
        conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        if default:
            conn.execute(
                sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(default))
            )
        conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL EXCLUDING INDEXES)").format(new, parent)
        )
        if default:
            columns = _columns(conn)
            moved = conn.execute(
                sql.SQL(
                    "WITH moved AS (DELETE FROM {default}"
                    " WHERE timestamp >= %s AND timestamp < %s RETURNING {columns})"
                    " INSERT INTO {new} ({columns}) SELECT {columns} FROM moved"
                ).format(default=sql.Identifier(default), columns=columns, new=new),
                (lower, upper),
            ).rowcount
        conn.execute(
            sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                parent, new, sql.Literal(lower), sql.Literal(upper)
            )
        )
    log.info("partition created", partition=name, moved_from_default=moved)
    return name, moved


def ensure_partitions(
    conn: psycopg.Connection[Any], *, months_ahead: int = 3, now: datetime | None = None
) -> UpkeepReport:
    """Create the partitions of this month and ``months_ahead`` more that are missing."""
    report = UpkeepReport()
    if not is_partitioned(conn):
        return report
    partitions = list_partitions(conn)
    default = next((p.name for p in partitions if p.is_default), None)
    start = month_start(now or datetime.now(UTC))
    for offset in range(months_ahead + 1):
        lower = add_months(start, offset)
        if any(p.overlaps(lower, add_months(lower, 1)) for p in partitions):
            continue
        name, moved = create_month(conn, lower, default)
        report.created.append(name)
        report.moved_from_default += moved
    return report


# -- retention -----------------------------------------------------------------------------


def drop_partitions_before(
    conn: psycopg.Connection[Any], cutoff: datetime, *, dry_run: bool
) -> tuple[int, list[str]]:
    """Drop the partitions that lie wholly before ``cutoff``; returns (rows, names).

    Each DROP is a catalog change, whatever the partition holds: no row-by-row DELETE,
    no dead tuples left for VACUUM. The rollups are other tables and stay as they are.
    """
    rows, dropped = 0, []
    for partition in list_partitions(conn):
        if partition.is_default or partition.upper is None or partition.upper > cutoff:
            continue
        table = sql.Identifier(partition.name)
        with conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            found = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
            if not dry_run:
                conn.execute(sql.SQL("DROP TABLE {}").format(table))
        rows += int(found[0]) if found else 0
        dropped.append(partition.name)
        log.info("partition dropped" if not dry_run else "partition would be dropped",
                 partition=partition.name, rows=found[0] if found else 0)  # fmt: skip
    return rows, dropped


def require_partitioned(conn: psycopg.Connection[Any]) -> None:
    """Raise a clear error while ai_call_logs is still a plain table."""
    if not is_partitioned(conn):
        raise MigrationError(
            "ai_call_logs is not partitioned yet: run `ailedger migrate` (sql/012_partitions.sql)"
        )

"""``ailedger partitions``: the monthly partitions of ai_call_logs."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ailedger.cli.options import DatabaseUrl
from ailedger.cli.spend import AsJson, _database, _json, console

partitions_app = typer.Typer(
    help="Monthly partitions of ai_call_logs: create ahead, list.", no_args_is_help=True
)


@partitions_app.command("upkeep")
def partitions_upkeep(
    months_ahead: Annotated[
        int | None,
        typer.Option(
            "--months-ahead",
            min=0,
            max=120,
            help="Months past this one to create"
            " \\[env: AILEDGER_PARTITION_MONTHS_AHEAD; default: 3]",
        ),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create this month's partition and the next ones, moving their rows out of DEFAULT."""
    from ailedger.ops.partitions import ensure_partitions, require_partitioned
    from worker.errors import MigrationError
    from worker.logs import configure_logging

    configure_logging()
    with _database(database_url) as (settings, conn):
        try:
            require_partitioned(conn)
        except MigrationError as exc:
            console.print(str(exc), style="red", markup=False)
            raise typer.Exit(1) from None
        ahead = settings.partition_months_ahead if months_ahead is None else months_ahead
        report = ensure_partitions(conn, months_ahead=ahead)
    for line in report.lines():
        console.print(line, markup=False)


@partitions_app.command("list")
def partitions_list(as_json: AsJson = False, database_url: DatabaseUrl = None) -> None:
    """Each partition with its range and its number of rows (Postgres's estimate)."""
    from ailedger.ops.partitions import list_partitions

    with _database(database_url) as (_, conn):
        partitions = list_partitions(conn)
        estimates = dict(
            conn.execute(
                "SELECT relname, greatest(reltuples, 0)::bigint FROM pg_class"
                " WHERE relname = ANY(%s)",
                ([p.name for p in partitions],),
            ).fetchall()
        )
    rows = [
        {"name": p.name, "from": p.lower, "to": p.upper, "default": p.is_default,
         "rows_estimate": estimates.get(p.name, 0)}
        for p in partitions
    ]  # fmt: skip
    if as_json:
        _json(rows)
        return
    table = Table("partition", "from", "to", "rows (est.)")
    for row in rows:
        span = ("any other", "") if row["default"] else (
            f"{row['from']:%Y-%m-%d}" if row["from"] else "the beginning",
            f"{row['to']:%Y-%m-%d}" if row["to"] else "the end",
        )  # fmt: skip
        table.add_row(str(row["name"]), *span, f"{row['rows_estimate']:,}")
    console.print(table)

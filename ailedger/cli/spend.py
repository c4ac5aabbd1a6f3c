"""``ailedger budget``, ``ailedger alerts`` and ``ailedger retention``: keep spend in check."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import orjson
import psycopg
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ailedger.cli.options import DatabaseUrl
from ailedger.settings import Settings

console = Console()

budget_app = typer.Typer(help="Spend limits per day, week or month.", no_args_is_help=True)
alerts_app = typer.Typer(
    help="Alert rules, active alerts and their delivery.", no_args_is_help=True
)
retention_app = typer.Typer(help="Drop old payloads, raw rows, dead letters.", no_args_is_help=True)

AsJson = Annotated[bool, typer.Option("--json", help="JSON instead of a table")]


@contextmanager
def _database(database_url: str | None) -> Iterator[tuple[Settings, psycopg.Connection[Any]]]:
    settings = Settings(database_url=database_url) if database_url else Settings()
    try:
        conn = psycopg.connect(settings.database_url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        console.print(f"cannot reach Postgres: {str(exc).strip()}", style="red", markup=False)
        raise typer.Exit(2) from None
    with conn:
        yield settings, conn


def _json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, default=str, option=orjson.OPT_INDENT_2).decode() + "\n")


def _fail(exc: Exception) -> typer.Exit:
    console.print(str(exc), style="red", markup=False)
    return typer.Exit(1)


# -- budget --------------------------------------------------------------------------------


@budget_app.command("add")
def budget_add(
    scope: Annotated[
        str, typer.Option("--scope", help="all | task=NAME | model=NAME | provider=NAME | job")
    ],
    period: Annotated[str, typer.Option("--period", help="day | week | month (UTC)")],
    limit: Annotated[str, typer.Option("--limit", help="USD, e.g. 50 or 2.50")],
    notify: Annotated[
        list[str] | None,
        typer.Option("--notify", help="Webhook or Slack URL (repeatable)"),
    ] = None,
    threshold: Annotated[
        list[str] | None,
        typer.Option("--threshold", help="Percent of the limit (repeatable; default 50 80 100)"),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Add a budget: alerts at each threshold, once per period."""
    from ailedger.ops.budgets import DEFAULT_THRESHOLDS, BudgetError, add_budget

    try:
        limit_usd = Decimal(limit.lstrip("$"))
        thresholds = [Decimal(t.rstrip("%")) for t in threshold] if threshold else None
    except InvalidOperation:
        console.print("--limit and --threshold take numbers, e.g. --limit 50 --threshold 80")
        raise typer.Exit(2) from None
    with _database(database_url) as (_, conn):
        try:
            budget = add_budget(
                conn, scope=scope, period=period, limit_usd=limit_usd, notify=notify or (),
                thresholds=thresholds or DEFAULT_THRESHOLDS,
            )  # fmt: skip
        except BudgetError as exc:
            raise _fail(exc) from None
    console.print(f"added {budget.title}", markup=False)


@budget_app.command("list")
def budget_list(as_json: AsJson = False, database_url: DatabaseUrl = None) -> None:
    """Each budget with its spend this period, percentage and projection."""
    from ailedger.ops.budgets import budget_status, list_budgets
    from ailedger.ops.outbox import safe_url

    with _database(database_url) as (_, conn):
        found = [budget_status(conn, b).to_dict() for b in list_budgets(conn)]
    if as_json:
        _json(found)
        return
    table = Table(title=f"budgets ({len(found)})")
    for column in ("id", "scope", "period", "spent", "limit", "%", "projection", "notify"):
        table.add_column(column, overflow="fold")
    for b in found:
        spent = f"${Decimal(b['spent_usd']):,.2f}"
        if b["unpriced_calls"]:
            spent += f" (+{b['unpriced_calls']} unpriced)"
        projection = b["projection_usd"]
        table.add_row(
            str(b["id"]), escape(b["scope"]), b["period"], spent,
            f"${Decimal(b['limit_usd']):,.2f}", b["percent"],
            f"${Decimal(projection):,.2f}" if projection is not None else "—",
            escape(", ".join(safe_url(u) for u in b["notify"]) or "—"),
        )  # fmt: skip
    console.print(table)


@budget_app.command("remove")
def budget_remove(
    budget_id: Annotated[int, typer.Argument(help="The id `budget list` shows")],
    database_url: DatabaseUrl = None,
) -> None:
    """Remove a budget; its alert history stays."""
    from ailedger.ops.budgets import BudgetError, remove_budget

    with _database(database_url) as (_, conn):
        try:
            budget = remove_budget(conn, budget_id)
        except BudgetError as exc:
            raise _fail(exc) from None
    console.print(f"removed {budget.title}", markup=False)


# -- alerts --------------------------------------------------------------------------------


@alerts_app.command("run")
def alerts_run(
    once: Annotated[
        bool, typer.Option("--once", help="Evaluate and deliver once, then exit (cron, tests)")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Evaluate every rule and budget and deliver what is due; without --once, every minute."""
    import time

    from ailedger.ops.alerts import evaluate
    from ailedger.ops.outbox import deliver
    from worker.logs import configure_logging

    configure_logging()
    with _database(database_url) as (settings, conn):
        while True:
            report = evaluate(conn, settings)
            sent = deliver(conn, settings)
            console.print(
                f"{len(report.fired)} fired, {len(report.resolved)} resolved, "
                f"{sent.delivered} delivered, {sent.failed_attempts} failed attempt(s)"
                + (f", skipped: {', '.join(report.skipped)}" if report.skipped else ""),
                markup=False,
            )
            if once:
                return
            time.sleep(settings.alert_every_s)


@alerts_app.command("list")
def alerts_list(
    history: Annotated[int, typer.Option("--history", min=0, help="Past alerts to show")] = 20,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """The rules, the active alerts, and the most recent past ones."""
    from ailedger.ops.alerts import list_alerts, list_rules
    from ailedger.ops.outbox import safe_url

    with _database(database_url) as (settings, conn):
        rules = list_rules(conn)
        active = list_alerts(conn, active=True, limit=1_000)
        past = list_alerts(conn, active=False, limit=history)
    default_notify = [safe_url(u) for u in settings.alert_notify]
    rule_rows: list[dict[str, Any]] = [
        {"name": r.name, "kind": r.kind, "enabled": r.enabled, "params": r.params,
         "notify": [safe_url(u) for u in r.notify] or default_notify}
        for r in rules
    ]  # fmt: skip
    if as_json:
        _json({"rules": rule_rows, "active": active, "history": past})
        return
    table = Table(title="alert rules")
    for column in ("name", "kind", "on", "params", "notify"):
        table.add_column(column, overflow="fold")
    for r in rule_rows:
        table.add_row(
            escape(r["name"]), r["kind"], "yes" if r["enabled"] else "no",
            escape(orjson.dumps(r["params"]).decode()), escape(", ".join(r["notify"]) or "—"),
        )  # fmt: skip
    console.print(table)
    for title, alerts in (("active alerts", active), ("recent past alerts", past)):
        t = Table(title=f"{title} ({len(alerts)})")
        for column in ("fired", "resolved", "name", "summary"):
            t.add_column(column, overflow="fold")
        for a in alerts:
            t.add_row(
                a["fired_at"][:19], (a["resolved_at"] or "—")[:19], escape(a["name"]),
                escape(a["summary"]),
            )  # fmt: skip
        console.print(t)


@alerts_app.command("outbox")
def alerts_outbox(
    failed: Annotated[bool, typer.Option("--failed", help="Only messages marked failed")] = False,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Notifications not delivered yet (waiting or marked failed)."""
    from ailedger.ops.outbox import safe_url

    where = "failed_at IS NOT NULL" if failed else "delivered_at IS NULL"
    with _database(database_url) as (_, conn):
        rows = conn.execute(
            "SELECT id, alert_id, event, url, attempts, created_at, failed_at, last_error"
            f" FROM alert_outbox WHERE {where} ORDER BY url, id LIMIT 1000"
        ).fetchall()
    found: list[dict[str, Any]] = [
        {"id": r[0], "alert_id": r[1], "event": r[2], "receiver": safe_url(r[3]),
         "attempts": r[4], "created_at": r[5], "failed_at": r[6], "last_error": r[7]}
        for r in rows
    ]  # fmt: skip
    if as_json:
        _json(found)
        return
    table = Table(title=f"undelivered notifications ({len(found)})")
    for column in ("id", "receiver", "event", "attempts", "failed", "last error"):
        table.add_column(column, overflow="fold")
    for m in found:
        table.add_row(
            str(m["id"]), escape(m["receiver"]), m["event"], str(m["attempts"]),
            str(m["failed_at"] or "—")[:19], escape(m["last_error"] or "—"),
        )  # fmt: skip
    console.print(table)


@alerts_app.command("retry")
def alerts_retry(
    url: Annotated[str | None, typer.Option("--url", help="Only this receiver")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Queue the notifications marked failed again, once the receiver is fixed."""
    from ailedger.ops.outbox import retry_failed

    with _database(database_url) as (_, conn):
        count = retry_failed(conn, url=url)
    console.print(f"queued {count} failed notification(s) again", markup=False)


# -- retention -----------------------------------------------------------------------------


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be removed, remove nothing")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Apply the retention policies (AILEDGER_RETENTION_*); the rollups are kept."""
    from ailedger.ops.retention import run_retention
    from worker.logs import configure_logging

    configure_logging()
    with _database(database_url) as (settings, conn):
        report = run_retention(conn, settings, dry_run=dry_run, now=datetime.now(UTC))
    for line in report.lines():
        console.print(line, markup=False)

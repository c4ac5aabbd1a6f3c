"""Alerts: rules over the rollups and the queue, budgets' thresholds, one decision each.

:func:`evaluate` looks at everything once, at ``now``:

- each budget (ailedger/ops/budgets.py): a threshold crossed in a period fires once
  per (budget, period start, scope, threshold) — the unique key ``alerts_budget_once``
  — and so does a projected overrun. Budget alerts do not resolve: they belong to
  their period, and the next period starts fresh;
- each enabled rule of ``alert_rules``: the scopes for which it holds now fire (at
  most one open alert per rule and scope, ``alerts_rule_open``); an open alert whose
  condition no longer holds is resolved, once.

Every alert row is written with its outbox rows in one transaction, and each
decision is an ``INSERT … ON CONFLICT DO NOTHING`` (or an ``UPDATE … WHERE
resolved_at IS NULL``): evaluators that restart or run side by side never notify twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import redis
import structlog
from psycopg.types.json import Jsonb

from ailedger.api import rollups
from ailedger.ops import outbox
from ailedger.ops.budgets import Budget, BudgetStatus, budget_status, list_budgets
from ailedger.ops.rules import RULES, Context, Finding, money
from ailedger.ops.status import queue_status
from ailedger.settings import Settings
from producer.connection import connect

log = structlog.get_logger("ailedger.alerts")


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    kind: str
    params: dict[str, Any]
    enabled: bool
    notify: tuple[str, ...]


@dataclass(slots=True)
class EvaluationReport:
    fired: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # rules that could not be evaluated


def list_rules(conn: psycopg.Connection[Any]) -> list[Rule]:
    rows = conn.execute("SELECT name, kind, params, enabled, notify FROM alert_rules ORDER BY name")
    return [Rule(r[0], r[1], dict(r[2]), r[3], tuple(r[4])) for r in rows]


# -- deciding ------------------------------------------------------------------------------

_ALERT_COLUMNS = (
    "id, source, kind, budget_id, rule, period_start, scope_key, threshold, summary, details,"
    " fired_at, resolved_at"
)


def alert_payload(row: tuple[Any, ...] | Any, name: str) -> dict[str, Any]:
    """An alerts row as the ``alert`` object of a notification (docs/alerts.md)."""
    (
        aid,
        source,
        kind,
        budget_id,
        rule,
        period_start,
        scope,
        threshold,
        summary,
        details,
        fired_at,
        resolved_at,
    ) = row
    return {
        "id": aid,
        "source": source,
        "kind": kind,
        "name": name,
        "budget_id": budget_id,
        "rule": rule,
        "scope": scope,
        "threshold": threshold or None,
        "period_start": period_start.isoformat() if period_start else None,
        "summary": summary,
        "details": details,
        "fired_at": fired_at.isoformat(),
        "resolved_at": resolved_at.isoformat() if resolved_at else None,
    }


def _fire(
    conn: psycopg.Connection[Any],
    values: dict[str, Any],
    conflict: str,
    name: str,
    urls: tuple[str, ...],
) -> int | None:
    """Insert an alert unless its key exists, with its notifications; its id if new."""
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO alerts (source, kind, budget_id, rule, period_start, scope_key,"
            " threshold, summary, details, fired_at) VALUES (%(source)s, %(kind)s,"
            " %(budget_id)s, %(rule)s, %(period_start)s, %(scope_key)s, %(threshold)s,"
            f" %(summary)s, %(details)s, %(fired_at)s) ON CONFLICT {conflict} DO NOTHING"
            f" RETURNING {_ALERT_COLUMNS}",
            {**values, "details": Jsonb(values["details"])},
        ).fetchone()
        if row is None:
            return None
        outbox.enqueue(conn, row[0], "firing", alert_payload(row, name), urls)
    log.info("alert fired", alert=row[0], name=name, scope=row[6], summary=row[8])
    return int(row[0])


def _resolve(
    conn: psycopg.Connection[Any], alert_id: int, name: str, urls: tuple[str, ...], at: datetime
) -> bool:
    with conn.transaction():
        row = conn.execute(
            "UPDATE alerts SET resolved_at = %s WHERE id = %s AND resolved_at IS NULL"
            f" RETURNING {_ALERT_COLUMNS}",
            (at, alert_id),
        ).fetchone()
        if row is None:
            return False  # another evaluator resolved it first
        outbox.enqueue(conn, alert_id, "resolved", alert_payload(row, name), urls)
    log.info("alert resolved", alert=alert_id, name=name, scope=row[6])
    return True


def evaluate_rules(
    conn: psycopg.Connection[Any],
    settings: Settings,
    *,
    now: datetime,
    redis_client: redis.Redis | None = None,
    report: EvaluationReport,
) -> None:
    queue_cache: list[Any] = []

    def queue() -> Any:
        if not queue_cache:
            try:
                client = redis_client or connect(settings.redis_url, socket_timeout=2.0)
                queue_cache.append(queue_status(client, settings))
            except redis.RedisError as exc:
                log.warning("queue rules skipped: Redis unavailable", error=str(exc))
                queue_cache.append(None)
        return queue_cache[0]

    ctx = Context(conn, settings, now, queue)
    for rule in list_rules(conn):
        if not rule.enabled:
            continue
        check = RULES.get(rule.kind)
        try:
            findings = check(ctx, rule.params) if check else None
        except (psycopg.Error, ValueError, TypeError, ArithmeticError) as exc:
            log.error("rule could not be evaluated", rule=rule.name, error=str(exc))
            findings = None
        if findings is None:
            report.skipped.append(rule.name)
            continue  # could not look: leave its alerts as they are
        urls = rule.notify or tuple(settings.alert_notify)
        name = f"rule {rule.name}"
        holding = {f.scope_key: f for f in findings}
        open_alerts = dict(
            conn.execute(
                "SELECT scope_key, id FROM alerts"
                " WHERE source = 'rule' AND rule = %s AND resolved_at IS NULL",
                (rule.name,),
            ).fetchall()
        )
        for key, finding in holding.items():
            if key in open_alerts:
                continue
            fired = _fire(
                conn,
                {
                    "source": "rule",
                    "kind": rule.kind,
                    "budget_id": None,
                    "rule": rule.name,
                    "period_start": None,
                    "scope_key": key,
                    "threshold": "",
                    "summary": finding.summary,
                    "details": finding.details,
                    "fired_at": now,
                },
                "(rule, scope_key) WHERE source = 'rule' AND resolved_at IS NULL",
                name,
                urls,
            )
            if fired is not None:
                report.fired.append(fired)
        for key, alert_id in open_alerts.items():
            if key not in holding and _resolve(conn, alert_id, name, urls, now):
                report.resolved.append(alert_id)


def _threshold_text(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _budget_findings(
    status: BudgetStatus, settings: Settings
) -> list[tuple[datetime, str, Finding]]:
    """(period start, threshold, finding) for everything the budget has reached."""
    b: Budget = status.budget
    found: list[tuple[datetime, str, Finding]] = []
    period: dict[str, Any] = {
        "period_start": status.period_start.isoformat(),
        "period_end": status.period_end.isoformat(),
        "limit_usd": str(b.limit_usd),
    }
    if b.scope_kind == "job":
        for job in status.jobs:
            for t in b.thresholds:
                if job.cost >= b.limit_usd * t / 100:
                    # Keyed by the period the job started in: a job is told once, even
                    # when its calls go on into the next period.
                    start = rollups.floor_time(job.first_call, b.period)
                    text = (
                        f"job {job.job_id} has cost {money(job.cost)}, "
                        f"{job.cost / b.limit_usd:.0%} of the {money(b.limit_usd)} "
                        f"per-job limit of {b.title} (crossed {_threshold_text(t)}%)"
                    )
                    details: dict[str, Any] = {
                        **period,
                        "job_id": job.job_id,
                        "spent_usd": str(job.cost),
                    }
                    found.append((start, _threshold_text(t), Finding(job.job_id, text, details)))
        return found
    details = {
        **period,
        "spent_usd": str(status.spent),
        "projection_usd": None if status.projection is None else str(status.projection),
        "unpriced_calls": status.unpriced_calls,
    }
    for t in b.thresholds:
        if status.spent >= b.limit_usd * t / 100:
            text = (
                f"{b.title}: {money(status.spent)} spent this {b.period}, "
                f"{status.percent}% of the limit (crossed {_threshold_text(t)}%)"
            )
            found.append((status.period_start, _threshold_text(t), Finding("", text, details)))
    projected = status.projection
    if (
        projected is not None
        and status.elapsed >= settings.projection_min_elapsed
        and projected > b.limit_usd > status.spent
    ):
        text = (
            f"{b.title}: at this rate the {b.period} ends at {money(projected)}, over the "
            f"{money(b.limit_usd)} limit ({money(status.spent)} spent so far)"
        )
        found.append((status.period_start, "projected", Finding("", text, details)))
    return found


def evaluate_budgets(
    conn: psycopg.Connection[Any], settings: Settings, *, now: datetime, report: EvaluationReport
) -> None:
    for budget in list_budgets(conn):
        status = budget_status(conn, budget, now=now)
        findings = _budget_findings(status, settings)
        if not findings:
            continue
        told = {
            (r[0], r[1], r[2])
            for r in conn.execute(
                "SELECT period_start, scope_key, threshold FROM alerts"
                " WHERE source = 'budget' AND budget_id = %s AND period_start >= %s",
                (budget.id, min(f[0] for f in findings)),
            )
        }
        for start, threshold, finding in findings:
            if (start, finding.scope_key, threshold) in told:
                continue
            kind = "budget_projection" if threshold == "projected" else "budget_threshold"
            fired = _fire(
                conn,
                {
                    "source": "budget",
                    "kind": kind,
                    "budget_id": budget.id,
                    "rule": None,
                    "period_start": start,
                    "scope_key": finding.scope_key,
                    "threshold": threshold,
                    "summary": finding.summary,
                    "details": finding.details,
                    "fired_at": now,
                },
                "(budget_id, period_start, scope_key, threshold) WHERE source = 'budget'",
                budget.title,
                budget.notify,
            )
            if fired is not None:
                report.fired.append(fired)


def evaluate(
    conn: psycopg.Connection[Any],
    settings: Settings,
    *,
    now: datetime | None = None,
    redis_client: redis.Redis | None = None,
) -> EvaluationReport:
    """Evaluate every budget and enabled rule once at ``now``; returns what changed."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    report = EvaluationReport()
    evaluate_budgets(conn, settings, now=now, report=report)
    evaluate_rules(conn, settings, now=now, redis_client=redis_client, report=report)
    return report


#: Open: a rule's alert until resolved; a budget's until its period ends.
_ACTIVE = (
    "((source = 'rule' AND resolved_at IS NULL)"
    " OR (source = 'budget' AND (details->>'period_end')::timestamptz > %(now)s))"
)


def list_alerts(
    conn: psycopg.Connection[Any],
    *,
    active: bool | None = None,
    limit: int = 100,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Alerts newest first, as notification payloads: all, only active, or only past ones."""
    where = {None: "TRUE", True: _ACTIVE, False: f"NOT {_ACTIVE}"}[active]
    rows = conn.execute(
        f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE {where}"
        " ORDER BY fired_at DESC, id DESC LIMIT %(limit)s",
        {"now": now or datetime.now(UTC), "limit": limit},
    ).fetchall()
    return [
        alert_payload(r, f"budget #{r[3]}" if r[1] == "budget" else f"rule {r[4]}") for r in rows
    ]

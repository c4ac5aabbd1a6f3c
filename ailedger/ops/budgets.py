"""Budgets: a USD limit per UTC day, ISO week or month, on all calls, a task, a model,
a provider, or each PDF job.

Spend comes from the rollups (sql/004_rollups.sql): a period is whole UTC days, so a
budget reads one day row per day of its period and group, whatever the traffic. The
per-job ceiling ("no job over $2") reads the raw table instead: the jobs with a call
in the period (timestamp index), then each one's whole cost (job_id index).

The projection is the spend so far divided by the elapsed fraction of the period
("at this rate the period ends at $X"); it is shown from the start, and alerted on
only once ``projection_min_elapsed`` of the period has passed, so the first minutes
of a day do not extrapolate one call into an overrun.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import psycopg

from ailedger.api import rollups
from worker.errors import AILedgerError

SCOPES = ("all", "task", "model", "provider", "job")
PERIODS = ("day", "week", "month")
DEFAULT_THRESHOLDS = (Decimal(50), Decimal(80), Decimal(100))


class BudgetError(AILedgerError):
    """A budget that cannot be made as asked (the message says what to change)."""


@dataclass(frozen=True, slots=True)
class Budget:
    id: int
    scope_kind: str
    scope_value: str
    period: str
    limit_usd: Decimal
    thresholds: tuple[Decimal, ...]
    notify: tuple[str, ...]

    @property
    def scope(self) -> str:
        """As the CLI spells it: ``all``, ``job``, ``task=NAME`` …"""
        if self.scope_kind in ("all", "job"):
            return self.scope_kind
        return f"{self.scope_kind}={self.scope_value}"

    @property
    def title(self) -> str:
        what = (
            "each job"
            if self.scope_kind == "job"
            else (
                "all calls" if self.scope_kind == "all" else f"{self.scope_kind} {self.scope_value}"
            )
        )
        return f"budget #{self.id} ({what}, ${self.limit_usd:.2f} per {self.period})"


@dataclass(frozen=True, slots=True)
class JobSpend:
    job_id: str
    cost: Decimal
    first_call: datetime


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """Where a budget stands at ``now``."""

    budget: Budget
    period_start: datetime
    period_end: datetime
    #: The scope's spend in the period; for the job scope, the costliest job's.
    spent: Decimal
    #: Calls of the scope without a price: the spend is a lower bound while any remain.
    unpriced_calls: int
    elapsed: float
    #: Spend at the end of the period at this rate; None for the job scope.
    projection: Decimal | None
    #: Job scope only: every job active in the period with its whole cost, costliest first.
    jobs: tuple[JobSpend, ...] = field(default=())

    @property
    def percent(self) -> Decimal:
        return (self.spent / self.budget.limit_usd * 100).quantize(Decimal("0.1"), ROUND_HALF_UP)

    def to_dict(self) -> dict[str, Any]:
        b = self.budget
        over = [j for j in self.jobs if j.cost > b.limit_usd]
        return {
            "id": b.id,
            "scope": b.scope,
            "period": b.period,
            "limit_usd": str(b.limit_usd),
            "thresholds": [str(t) for t in b.thresholds],
            "notify": list(b.notify),
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "spent_usd": str(self.spent),
            "percent": str(self.percent),
            "projection_usd": None if self.projection is None else str(self.projection),
            "elapsed": round(self.elapsed, 4),
            "unpriced_calls": self.unpriced_calls,
            "jobs_active": len(self.jobs) if b.scope_kind == "job" else None,
            "jobs_over_limit": [j.job_id for j in over] if b.scope_kind == "job" else None,
        }


def parse_scope(text: str) -> tuple[str, str]:
    """``all``, ``job``, ``task=NAME``, ``model=NAME``, ``provider=NAME`` -> (kind, value)."""
    kind, _, value = text.partition("=")
    kind = kind.strip().lower()
    value = value.strip()
    if kind in ("all", "job") and not value:
        return kind, ""
    if kind in ("task", "model", "provider") and value:
        return kind, value
    raise BudgetError(
        f"cannot read scope {text!r}: use all, job, task=NAME, model=NAME or provider=NAME"
    )


def add_budget(
    conn: psycopg.Connection[Any],
    *,
    scope: str,
    period: str,
    limit_usd: Decimal,
    notify: Sequence[str] = (),
    thresholds: Sequence[Decimal] = DEFAULT_THRESHOLDS,
) -> Budget:
    """Store a budget; returns it with its id."""
    kind, value = parse_scope(scope)
    if period not in PERIODS:
        raise BudgetError(f"unknown period {period!r}: use day, week or month")
    if not limit_usd.is_finite() or limit_usd <= 0:
        raise BudgetError(f"the limit must be a positive amount of USD, not {limit_usd}")
    if not thresholds or any(not t.is_finite() or t <= 0 for t in thresholds):
        raise BudgetError("thresholds are positive percentages of the limit, e.g. 50 80 100")
    for url in notify:
        if not url.startswith(("https://", "http://")):
            raise BudgetError(f"cannot notify {url!r}: give an http(s) URL (webhook or Slack)")
    row = conn.execute(
        "INSERT INTO budgets (scope_kind, scope_value, period, limit_usd, thresholds, notify)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (kind, value, period, limit_usd, sorted(set(thresholds)), list(notify)),
    ).fetchone()
    assert row is not None
    return get_budget(conn, row[0])


def remove_budget(conn: psycopg.Connection[Any], budget_id: int) -> Budget:
    """Delete a budget (its alert history stays); raises BudgetError when there is none."""
    budget = get_budget(conn, budget_id)
    conn.execute("DELETE FROM budgets WHERE id = %s", (budget_id,))
    return budget


_COLUMNS = "id, scope_kind, scope_value, period, limit_usd, thresholds, notify"


def _budget(row: Sequence[Any]) -> Budget:
    return Budget(
        id=row[0],
        scope_kind=row[1],
        scope_value=row[2],
        period=row[3],
        limit_usd=row[4],
        thresholds=tuple(row[5]),
        notify=tuple(row[6]),
    )


def get_budget(conn: psycopg.Connection[Any], budget_id: int) -> Budget:
    row = conn.execute(f"SELECT {_COLUMNS} FROM budgets WHERE id = %s", (budget_id,)).fetchone()
    if row is None:
        raise BudgetError(f"no budget #{budget_id}; see `ailedger budget list`")
    return _budget(row)


def list_budgets(conn: psycopg.Connection[Any]) -> list[Budget]:
    return [_budget(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM budgets ORDER BY id")]


@dataclass(slots=True)
class Sums:
    """What the rules and budgets read of a group of calls."""

    calls: int = 0
    errors: int = 0
    fallbacks: int = 0
    cost: Decimal = Decimal(0)
    unpriced: int = 0


def rollup_sums(
    conn: psycopg.Connection[Any],
    start: datetime,
    end: datetime,
    *,
    by: Sequence[str] = (),
    tasks: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    providers: Sequence[str] | None = None,
) -> dict[tuple[str, ...], Sums]:
    """Sums over minute-aligned [start, end) from the rollups, grouped by rollup columns."""
    for column in by:
        if column not in ("task", "model", "provider"):
            raise ValueError(f"cannot group rollups by {column!r}")
    where, params = rollups._where(rollups.cover(start, end), tasks, models, providers)
    keys = "".join(f"r.{c}, " for c in by)
    group = f"GROUP BY {', '.join(str(i + 1) for i in range(len(by)))}" if by else ""
    query = f"""SELECT {keys}sum(r.calls)::bigint, sum(r.errors)::bigint,
            sum(r.fallbacks)::bigint, sum(r.cost), sum(r.unpriced)::bigint
        FROM ai_call_rollups r WHERE {where} {group}"""
    found: dict[tuple[str, ...], Sums] = {}
    for row in conn.execute(query.encode(), params):
        *key, calls, errors, fallbacks, cost, unpriced = row
        if calls is None:
            continue
        found[tuple(key)] = Sums(int(calls), int(errors), int(fallbacks), cost, int(unpriced))
    return found


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    """The UTC day, ISO week (from Monday) or month holding ``now``."""
    start = rollups.floor_time(now, period)
    return start, rollups.next_time(start, period)


def job_spend(
    conn: psycopg.Connection[Any], start: datetime, end: datetime
) -> tuple[list[JobSpend], int]:
    """Each job with a call in [start, end): its whole cost; and their unpriced calls."""
    rows = conn.execute(
        """SELECT l.job_id::text, coalesce(sum(l.cost), 0), min(l.timestamp),
                  count(*) FILTER (WHERE l.cost IS NULL)
           FROM ai_call_logs l
           WHERE l.job_id IN (SELECT DISTINCT job_id FROM ai_call_logs
                              WHERE timestamp >= %s AND timestamp < %s AND job_id IS NOT NULL)
           GROUP BY l.job_id ORDER BY 2 DESC, 1""",
        (start, end),
    ).fetchall()
    return [JobSpend(r[0], r[1], r[2]) for r in rows], sum(int(r[3]) for r in rows)


def budget_status(
    conn: psycopg.Connection[Any], budget: Budget, *, now: datetime | None = None
) -> BudgetStatus:
    """Spend, percentage and projection of ``budget`` in the period holding ``now``."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    start, end = period_bounds(budget.period, now)
    elapsed = min(1.0, max(0.0, (now - start) / (end - start)))
    if budget.scope_kind == "job":
        jobs, unpriced = job_spend(conn, start, end)
        spent = jobs[0].cost if jobs else Decimal(0)
        return BudgetStatus(budget, start, end, spent, unpriced, elapsed, None, tuple(jobs))
    filters: dict[str, list[str]] = {}
    if budget.scope_kind != "all":
        filters[f"{budget.scope_kind}s"] = [budget.scope_value]
    # The whole period: only day rows to read, and nothing in it lies past `now` anyway.
    sums = rollup_sums(conn, start, end, **filters).get((), Sums())
    projection = None
    if elapsed > 0:
        projection = (sums.cost / Decimal(elapsed)).quantize(Decimal("0.000001"))
    return BudgetStatus(budget, start, end, sums.cost, sums.unpriced, elapsed, projection)

"""Budgets and alerts for the admin dashboard: spend against each limit, active alerts.

Mounted by ailedger/api/app.py behind the admin token; reads through the API's
read-only role (sql/009_budgets_alerts.sql grants it SELECT). Receiver URLs are shown
without their path: Slack and most webhooks carry their secret there.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from ailedger.ops.alerts import list_alerts
from ailedger.ops.budgets import budget_status, list_budgets
from ailedger.ops.outbox import safe_url

router = APIRouter(prefix="/api/admin", tags=["admin"])


class BudgetState(BaseModel):
    """One budget where it stands now; money as exact decimal strings (USD)."""

    id: int
    scope: str = Field(description="`all`, `job` (each job), `task=NAME`, `model=NAME` …")
    period: str = Field(description="`day`, `week` or `month` (UTC)")
    limit_usd: str
    thresholds: list[str] = Field(description="Percentages of the limit that alert.")
    notify: list[str] = Field(description="Receivers, shown without their path.")
    period_start: str
    period_end: str
    spent_usd: str = Field(description="Spend this period; for `job`, the costliest job's.")
    percent: str = Field(description="spent / limit * 100, one decimal.")
    projection_usd: str | None = Field(
        description="At this rate the period ends at this spend; null for the `job` scope."
    )
    elapsed: float = Field(description="Share of the period gone, 0 to 1.")
    unpriced_calls: int = Field(description="Calls without a price: the spend is a lower bound.")
    jobs_active: int | None
    jobs_over_limit: list[str] | None


class Alert(BaseModel):
    """An alert as notifications carry it (docs/alerts.md)."""

    id: int
    source: str = Field(description="`rule` or `budget`")
    kind: str
    name: str = Field(description="`rule NAME` or `budget #ID`")
    budget_id: int | None
    rule: str | None
    scope: str
    threshold: str | None
    period_start: str | None
    summary: str
    details: dict[str, Any]
    fired_at: str
    resolved_at: str | None


class Alerts(BaseModel):
    active: list[Alert]
    history: list[Alert]


@router.get("/budgets", response_model=list[BudgetState])
def budgets(request: Request) -> list[dict[str, Any]]:
    """Each budget with its spend this period, percentage of the limit and projection."""
    with request.app.state.backends.pool().connection() as conn, conn.transaction():
        found = [budget_status(conn, b).to_dict() for b in list_budgets(conn)]
    for b in found:
        b["notify"] = [safe_url(u) for u in b["notify"]]
    return found


@router.get("/alerts", response_model=Alerts)
def alerts(
    request: Request,
    history: Annotated[int, Query(ge=0, le=1_000, description="Past alerts to include")] = 100,
) -> dict[str, list[dict[str, Any]]]:
    """Active alerts (rules firing, budgets reached this period) and the most recent past ones."""
    with request.app.state.backends.pool().connection() as conn, conn.transaction():
        return {
            "active": list_alerts(conn, active=True, limit=1_000),
            "history": list_alerts(conn, active=False, limit=history),
        }

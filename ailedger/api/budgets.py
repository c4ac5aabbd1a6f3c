"""Budgets and alerts for the admin dashboard: spend against each limit, active alerts.

Mounted by ailedger/api/app.py behind the admin token; reads through the API's
read-only role (sql/009_budgets_alerts.sql grants it SELECT). Receiver URLs are shown
without their path: Slack and most webhooks carry their secret there.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from ailedger.ops.alerts import list_alerts
from ailedger.ops.budgets import budget_status, list_budgets
from ailedger.ops.outbox import safe_url

router = APIRouter(prefix="/api/admin", tags=["admin"])


@router.get("/budgets")
def budgets(request: Request) -> list[dict[str, Any]]:
    """Each budget with its spend this period, percentage of the limit and projection."""
    with request.app.state.backends.pool().connection() as conn, conn.transaction():
        found = [budget_status(conn, b).to_dict() for b in list_budgets(conn)]
    for b in found:
        b["notify"] = [safe_url(u) for u in b["notify"]]
    return found


@router.get("/alerts")
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

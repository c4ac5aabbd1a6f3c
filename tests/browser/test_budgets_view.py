"""The budgets and alerts view shows what the API says: spend, limit, projection, overruns,
the alerts firing now by name, and past ones, with the data's text kept as text."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from playwright.sync_api import Page, expect

from ailedger.ops import alerts, budgets
from ailedger.settings import Settings
from tests.browser.conftest import XSS, Served, sign_in


def stored_call(
    db: psycopg.Connection[Any], at: datetime, cost: str | None, *, task: str, model: str
) -> None:
    """One stored call; the rollup trigger counts it as it counts a worker's insert."""
    db.execute(
        "INSERT INTO ai_call_logs (id, timestamp, task, model, provider, input_tokens, cost,"
        " cost_source) VALUES (%s, %s, %s, %s, 'acme', 100, %s, %s)",
        (uuid.uuid4(), at, task, model, cost, "unpriced" if cost is None else "reported"),
    )


def test_budgets_and_alerts_show_the_apis_figures_and_name_the_unpriced_model(
    page: Page, served: Served, db: psycopg.Connection[Any], settings: Settings
) -> None:
    now = datetime.now(UTC)
    # A call a minute ago is in today's, this week's and this month's period alike.
    at = now - timedelta(minutes=1)
    stored_call(db, at, "0.40", task="classification", model="claude-3-5-haiku-20241022")
    stored_call(db, at, "0.35", task="classification", model="claude-3-5-haiku-20241022")
    stored_call(db, at, None, task="image_analysis", model="in-house-vision-9")
    roomy = budgets.add_budget(db, scope="all", period="month", limit_usd=Decimal(1_000_000))
    tight = budgets.add_budget(
        db, scope="task=classification", period="day", limit_usd=Decimal("0.50")
    )
    db.execute("UPDATE alert_rules SET enabled = (name = 'unpriced_model')")
    alerts.evaluate(db, settings, now=now)
    # A past alert whose text is markup: it must show as text.
    db.execute(
        "INSERT INTO alerts (source, kind, rule, scope_key, summary, fired_at, resolved_at)"
        " VALUES ('rule', 'error_rate', 'error_rate', %s, %s, %s, %s)",
        (f"model={XSS}", XSS, now - timedelta(hours=3), now - timedelta(hours=2)),
    )
    api_budgets = {b["id"]: b for b in served.api("/api/admin/budgets")}
    api_alerts = served.api("/api/admin/alerts")

    sign_in(page, served, "/budgets")
    view = page.locator('[data-view="budgets"][data-ready]')
    view.wait_for()
    # The hand-computed spend: $0.75 of the task's $0.50 (150 %), $0.75 of everything.
    assert Decimal(api_budgets[tight.id]["spent_usd"]) == Decimal("0.75")
    assert Decimal(api_budgets[roomy.id]["spent_usd"]) == Decimal("0.75")
    later = {b["id"]: b for b in served.api("/api/admin/budgets")}
    for budget_id, answer in api_budgets.items():

        def shown(field: str, budget_id: int = budget_id) -> Decimal:
            cell = page.locator(f'[data-budget="{budget_id}"] [data-field="{field}"]')
            return Decimal(cell.get_attribute("data-value") or "nan")

        assert shown("spent") == Decimal(answer["spent_usd"])
        assert shown("limit") == Decimal(answer["limit_usd"])
        assert shown("percent") == Decimal(answer["percent"])
        # The same spend over a longer elapsed time: the projection only falls while the
        # page loads, so the page's lies between the API's answers before and after.
        before, after = (
            Decimal(answer["projection_usd"]),
            Decimal(later[budget_id]["projection_usd"]),
        )
        assert after <= shown("projection") <= before
    expect(page.locator(f'[data-budget="{tight.id}"]')).to_have_attribute("data-overrun", "over")
    expect(page.locator(f'[data-budget="{tight.id}"] [data-field="overrun"]')).to_have_text(
        "over the limit"
    )
    expect(page.locator(f'[data-budget="{tight.id}"] [data-field="percent"]')).to_have_text("150%")
    expect(page.locator(f'[data-budget="{roomy.id}"]')).to_have_attribute("data-overrun", "")
    expect(page.locator(f'[data-budget="{roomy.id}"] [data-field="spent"]')).to_have_text("$0.75")

    # Firing now: the budget's thresholds and the model without a price, named.
    active = page.locator('[data-table="active-alerts"] tbody tr[data-row]')
    expect(active).to_have_count(len(api_alerts["active"]))
    unpriced = active.filter(has_text="in-house-vision-9")
    expect(unpriced).to_have_count(1)
    expect(unpriced.locator('[data-col="name"]')).to_have_text("rule unpriced_model")
    assert any(a["kind"] == "budget_threshold" for a in api_alerts["active"])

    past = page.locator('[data-table="alert-history"] tbody tr[data-row]')
    expect(past).to_have_count(1)
    expect(past.locator('[data-col="summary"]')).to_have_text(XSS)
    expect(past.locator('[data-col="scope"]')).to_have_text(f"model={XSS}")
    assert page.locator("img").count() == 0
    assert page.dialogs == []  # type: ignore[attr-defined]

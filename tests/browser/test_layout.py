"""Each view at laptop and phone width: nothing pushes the page sideways.

With ``AILEDGER_SCREENSHOTS=docs/screenshots`` the screenshots are kept there (README).
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from ailedger.ops import alerts, budgets
from tests.browser.conftest import IMAGE_ID, LAPTOP, PHONE, XSS, Served


@pytest.mark.parametrize("size", ["laptop", "phone"])
def test_every_view_fits_the_screen(
    browser: Browser, served: Served, seeded: Any, db: Any, settings: Any, tmp_path: Path, size: str
) -> None:
    viewport = LAPTOP if size == "laptop" else PHONE
    keep = os.environ.get("AILEDGER_SCREENSHOTS")
    out = Path(keep) if keep else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    budgets.add_budget(db, scope="all", period="month", limit_usd=Decimal(50))
    budgets.add_budget(db, scope=f"task={XSS}", period="day", limit_usd=Decimal("0.001"))
    budgets.add_budget(db, scope="job", period="week", limit_usd=Decimal("0.50"))
    alerts.evaluate(db, settings)
    job_id = next(e["job_id"] for e in seeded if e["task"] == XSS)
    context = browser.new_context(viewport=viewport, color_scheme="light")
    context.add_init_script(f"sessionStorage.setItem('ailedger.token', {served.token!r})")
    page = context.new_page()
    views = {
        "overview": ("/", '[data-kpi="calls"]'),
        "jobs": ("/jobs?sort=cost", '[data-table="jobs"] tbody tr[data-row]'),
        "job": (f"/jobs/{job_id}", '[data-table="job-calls"] tbody tr[data-row]'),
        "image": (f"/images/{IMAGE_ID}", '[data-table="image-steps"] tbody tr[data-row]'),
        "budgets": ("/budgets", '[data-view="budgets"][data-ready]'),
    }
    try:
        for name, (path, ready) in views.items():
            page.goto(served.url + path)
            page.locator(ready).first.wait_for()
            page.screenshot(path=str(out / f"{name}-{size}.png"), full_page=True)
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{name} at {size} width scrolls sideways by {overflow}px"
    finally:
        context.close()

"""What a person sees on the dashboard equals what the API and the raw rows say."""

from __future__ import annotations

import csv
import io
import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
from playwright.sync_api import Page, expect

from ailedger.api.dashboard import CSP
from tests.browser.conftest import (
    IMAGE_ID,
    UNPRICED_MODEL,
    XSS,
    Served,
    log_events,
    sign_in,
)
from worker.consumer import Worker

EMBED_PAGE = Path(__file__).parents[2] / "dashboard" / "test" / "embed.html"


def kpi(page: Page, name: str) -> str:
    return page.locator(f'[data-kpi="{name}"]').get_attribute("data-value") or ""


def shown_range(page: Page) -> dict[str, str]:
    note = page.locator(".updated[data-from]")
    expect(note).to_have_attribute("data-from", re.compile(".+"))
    return {
        "from": note.get_attribute("data-from") or "",
        "to": note.get_attribute("data-to") or "",
    }


def wait_loaded(page: Page) -> None:
    page.locator('[data-kpi="calls"]').wait_for()
    expect(page.locator(".updated")).not_to_have_text("Loading…")


def open_overview(page: Page, served: Served) -> dict[str, str]:
    """Sign in on the overview; the range it shows, as the API answered it."""
    sign_in(page, served)
    wait_loaded(page)
    return shown_range(page)


def same_number(shown: str, expected: Any) -> bool:
    if expected is None:
        return shown == ""
    return Decimal(shown) == Decimal(str(expected))


def table(page: Page, name: str) -> dict[str, dict[str, str]]:
    """Rows of a table by key: each column's data-value."""
    rows: dict[str, dict[str, str]] = {}
    for row in page.locator(f'[data-table="{name}"] tbody tr[data-row]').all():
        cells = row.locator("td[data-col]")
        rows[row.get_attribute("data-row") or ""] = {
            cells.nth(i).get_attribute("data-col") or "": cells.nth(i).get_attribute("data-value")
            or ""
            for i in range(cells.count())
        }
    return rows


def check_stats(shown: dict[str, str], api: dict[str, Any]) -> None:
    expected = {
        "calls": api["calls"],
        "tokens": api["tokens"],
        "cost": None if api["unpriced_calls"] >= api["calls"] else api["cost"],
        "p50": api["latency_ms"]["p50"],
        "p95": api["latency_ms"]["p95"],
        "p99": api["latency_ms"]["p99"],
        "confidence_mean": api["confidence_mean"],
        "fallback_rate": api["fallback_rate"],
        "error_rate": api["error_rate"],
    }
    for column, value in expected.items():
        assert same_number(shown[column], value), (column, shown[column], value)


# -- serving and security ---------------------------------------------------------


def test_without_the_token_only_the_login_shows_and_a_wrong_token_says_so(
    page: Page, served: Served, seeded: Any
) -> None:
    for path in ("/", "/jobs", f"/jobs/{uuid.uuid4()}", f"/images/{IMAGE_ID}"):
        response = httpx.get(served.url + path)
        assert response.status_code == 200 and response.headers["content-security-policy"] == CSP
    assert httpx.get(served.url + "/api/admin/ai-metrics").status_code == 401
    assert httpx.get(served.url + "/api/admin/jobs").status_code == 401
    assert httpx.get(served.url + f"/api/jobs/{uuid.uuid4()}/events").status_code == 401

    page.goto(served.url + "/")
    expect(page.get_by_label("API token")).to_be_visible()
    expect(page.locator("nav.topbar")).to_have_count(0)
    expect(page.locator("[data-kpi]")).to_have_count(0)
    page.get_by_label("API token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("[data-login-error]")).to_contain_text("refused")
    expect(page.locator("[data-kpi]")).to_have_count(0)

    page.get_by_label("API token").fill(served.token)
    page.get_by_role("button", name="Sign in").click()
    wait_loaded(page)
    assert "token" not in page.url and served.token not in page.url
    # The token lives in this tab's sessionStorage: a reload keeps the view, no login.
    page.reload()
    wait_loaded(page)


def test_text_from_the_data_is_inert(page: Page, served: Served, seeded: Any) -> None:
    sign_in(page, served)
    wait_loaded(page)
    task_cell = page.locator('[data-table="tasks"] td[data-col="task"]', has_text=XSS)
    expect(task_cell).to_have_count(1)
    job_id = next(e["job_id"] for e in seeded if e["task"] == XSS)
    page.goto(f"{served.url}/jobs/{job_id}")
    expect(
        page.locator('[data-table="job-calls"] td[data-col="detail"]', has_text=XSS)
    ).to_have_count(1)
    assert page.locator('img[src="x"]').count() == 0
    assert page.dialogs == []  # type: ignore[attr-defined]


# -- overview -----------------------------------------------------------------------


def test_every_figure_of_the_overview_equals_the_api(
    page: Page, served: Served, seeded: Any, database_url: str
) -> None:
    span = open_overview(page, served)
    api = served.api("/api/admin/ai-metrics", **span)
    totals = api["totals"]
    assert totals["calls"] == len(seeded)
    for name in ("calls", "tokens", "error_rate", "fallback_rate", "confidence_mean",
                 "unpriced_calls", "cost"):  # fmt: skip
        assert same_number(kpi(page, name), totals[name]), name
    # Unpriced calls stand apart from $0, with the models that need a price.
    expect(page.locator(f'[data-unpriced-model="{UNPRICED_MODEL}"]')).to_be_visible()
    models = table(page, "models")
    assert set(models) == {m["model"] for m in api["by_model"]}
    for row in api["by_model"]:
        check_stats(models[row["model"]], row)
    assert models[UNPRICED_MODEL]["cost"] == ""
    cell = page.locator(
        f'[data-table="models"] tr[data-row="{UNPRICED_MODEL}"] td[data-col="cost"]'
    )
    expect(cell).to_have_text("—")
    tasks = table(page, "tasks")
    assert set(tasks) == {t["task"] for t in api["by_task"]}
    for row in api["by_task"]:
        check_stats(tasks[row["task"]], row)
    reasons = page.locator("[data-reason]")
    assert [
        (
            reasons.nth(i).get_attribute("data-reason"),
            int(reasons.nth(i).get_attribute("data-value") or 0),
        )
        for i in range(reasons.count())
    ] == [(r["reason"], r["calls"]) for r in api["top_fallback_reasons"]]
    queue = api["queue"]
    for fact in ("lag", "pending", "dead_letter", "workers_alive", "length"):
        assert same_number(
            page.locator(f'[data-fact="{fact}"]').get_attribute("data-value") or "", queue[fact]
        ), fact
    expect(page.locator("[data-verdict]")).to_have_text(queue["verdict"])
    # The average cost per PDF job, against the raw rows.
    with psycopg.connect(database_url) as conn:
        jobs, cost = conn.execute(
            "SELECT count(DISTINCT job_id), sum(cost) FROM ai_call_logs"
            " WHERE job_id IS NOT NULL AND timestamp >= %s AND timestamp < %s",
            (span["from"], span["to"]),
        ).fetchone()  # type: ignore[misc]
    assert abs(Decimal(kpi(page, "average_job_cost")) - cost / jobs) < Decimal("1e-10")


def test_filters_and_ranges_live_in_the_url_and_redraw_the_page(
    page: Page, served: Served, seeded: Any
) -> None:
    sign_in(page, served)
    wait_loaded(page)
    all_models = page.locator('[data-chart="cost"] .u-legend .u-series').count()
    busiest = max(served.api("/api/admin/ai-metrics", **shown_range(page))["by_task"],
                  key=lambda t: t["calls"])["task"]  # fmt: skip
    page.locator(f'[data-table="tasks"] tr[data-row="{busiest}"] button.link').click()
    expect(page).to_have_url(re.compile(re.escape("task=")))
    wait_loaded(page)
    span = shown_range(page)
    filtered = served.api("/api/admin/ai-metrics", **span, task=busiest)
    expect(page.locator('[data-kpi="calls"]')).to_have_attribute(
        "data-value", str(filtered["totals"]["calls"])
    )
    assert set(table(page, "tasks")) == {busiest}
    drawn = page.locator('[data-chart="cost"] .u-legend .u-series').count()
    assert drawn - 1 == len(filtered["by_model"]) and drawn < all_models

    page.locator('[data-range="7d"]').click()
    expect(page).to_have_url(re.compile(re.escape("range=7d")))
    wait_loaded(page)
    span7 = shown_range(page)
    assert datetime.fromisoformat(span7["to"]) - datetime.fromisoformat(span7["from"]) >= timedelta(
        days=7
    )
    linked = page.url
    page.goto("about:blank")
    page.goto(linked)
    wait_loaded(page)
    expect(page.locator('[data-range="7d"]')).to_have_attribute("aria-pressed", "true")
    expect(page.locator('select[name="task"]')).to_have_value(busiest)
    assert set(table(page, "tasks")) == {busiest}

    # A provider is the models it served: the page shows what the API says for them.
    page.goto(served.url + "/?provider=acme")
    wait_loaded(page)
    assert set(table(page, "models")) == {UNPRICED_MODEL}


def test_threshold_what_if_gives_the_fallback_rate_of_the_raw_scores(
    page: Page, served: Served, seeded: Any, database_url: str
) -> None:
    span = open_overview(page, served)
    with psycopg.connect(database_url) as conn:
        task, scored = conn.execute(
            "SELECT task, count(*) FROM ai_call_logs WHERE confidence_score IS NOT NULL"
            " AND timestamp >= %s AND timestamp < %s GROUP BY task ORDER BY 2 DESC LIMIT 1",
            (span["from"], span["to"]),
        ).fetchone()  # type: ignore[misc]
        below = conn.execute(
            "SELECT count(*) FROM ai_call_logs WHERE task = %s AND confidence_score < 0.85"
            " AND timestamp >= %s AND timestamp < %s",
            (task, span["from"], span["to"]),
        ).fetchone()[0]  # type: ignore[index]
    slider = page.locator(f'input[data-whatif="{task}"]')
    slider.focus()
    for _ in range(3):  # 0.70 → 0.85 with the keyboard
        page.keyboard.press("ArrowRight")
    expect(page).to_have_url(re.compile(re.escape("0.85")))
    result = page.locator(f'[data-whatif-result="{task}"]')
    expect(result).to_have_attribute("data-rate", re.compile(".+"))
    assert abs(float(result.get_attribute("data-rate") or 0) - below / scored) < 1e-9


# -- jobs, job view, image view ---------------------------------------------------


def test_jobs_sort_by_cost_and_search_by_id(
    page: Page, served: Served, seeded: Any, database_url: str
) -> None:
    with psycopg.connect(database_url) as conn:
        ranked = conn.execute(
            "SELECT job_id::text, sum(cost) FROM ai_call_logs WHERE job_id IS NOT NULL"
            " GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
    sign_in(page, served, "/jobs")
    page.locator('[data-table="jobs"] tbody tr[data-row]').first.wait_for()
    page.locator('[data-table="jobs"] button[data-sort="cost"]').click()
    expect(page).to_have_url(re.compile(re.escape("sort=cost")))
    first = page.locator('[data-table="jobs"] tbody tr[data-row]').first
    expect(first).to_have_attribute("data-row", ranked[0][0])
    assert (
        Decimal(first.locator('td[data-col="cost"]').get_attribute("data-value") or "")
        == ranked[0][1]
    )
    page.get_by_label("Job id").fill(ranked[-1][0][:8])
    page.get_by_role("button", name="Search").click()
    expect(page.locator('[data-table="jobs"] tbody tr[data-row]')).to_have_count(1)
    expect(page.locator('[data-table="jobs"] tbody tr[data-row]')).to_have_attribute(
        "data-row", ranked[-1][0]
    )


def test_the_job_view_shows_each_new_step_without_a_reload(
    page: Page, served: Served, settings: Any, database_url: str
) -> None:
    job_id = str(uuid.uuid4())
    start = datetime.now(UTC) - timedelta(minutes=5)

    def step(i: int) -> dict[str, Any]:
        return {
            "timestamp": start + timedelta(seconds=i),
            "job_id": job_id,
            "task": "product_enrichment_stage2" if i % 2 else "material_classification",
            "model": "claude-3-5-haiku-20241022",
            "provider": "anthropic",
            "input_tokens": 1_000 + 10 * i,
            "output_tokens": 200,
            "latency_ms": 500,
            "confidence_breakdown": {"model_confidence": 0.9},
        }

    log_events(settings, [step(0)])
    worker = Worker(settings)
    thread = threading.Thread(target=worker.run, name="dashboard-test-worker")
    thread.start()
    try:
        sign_in(page, served, f"/jobs/{job_id}")
        rows = page.locator('[data-table="job-calls"] tbody tr[data-row]')
        expect(rows).to_have_count(1, timeout=15_000)
        expect(page.locator("[data-live-state]")).to_have_attribute("data-live-state", "live")
        page.evaluate("window.__sameDocument = true")
        for i in range(1, 4):
            log_events(settings, [step(i)])
            expect(rows).to_have_count(i + 1, timeout=10_000)
            answer = served.api(f"/api/admin/jobs/{job_id}/ai-costs")
            expect(page.locator('[data-kpi="cost"]')).to_have_attribute(
                "data-value", answer["totals"]["cost"]
            )
            last = rows.nth(i).locator('td[data-col="running_cost"]')
            assert Decimal(last.get_attribute("data-value") or "") == Decimal(
                answer["totals"]["cost"]
            )
        assert page.evaluate("window.__sameDocument") is True
    finally:
        worker.stop(5)
        thread.join(10)
    with psycopg.connect(database_url) as conn:
        stored = conn.execute(
            "SELECT count(*) FROM ai_call_logs WHERE job_id = %s", (job_id,)
        ).fetchone()
    assert stored == (4,)


def test_image_view_with_a_slash_in_its_id_shows_each_step_and_the_total(
    page: Page, served: Served, seeded: Any
) -> None:
    answer = served.api(f"/api/admin/images/{IMAGE_ID}/ai-costs")
    sign_in(page, served, f"/images/{IMAGE_ID}")
    expect(page.locator("[data-image-id]")).to_have_text(IMAGE_ID)
    steps = page.locator('[data-table="image-steps"] tbody tr[data-row]')
    expect(steps).to_have_count(3)
    shown = table(page, "image-steps")
    for step in answer["steps"]:
        expected = None if step["unpriced_calls"] >= step["calls"] else step["cost"]
        assert same_number(shown[step["task"]]["cost"], expected)
    assert shown["image_analysis"]["cost"] == ""  # unpriced: "—"
    total = page.locator('[data-table="image-steps"] tfoot [data-col="cost"]')
    expect(total).to_have_attribute("data-value", answer["total"]["cost"])


# -- CSV ---------------------------------------------------------------------------


def download_csv(page: Page, name: str) -> list[dict[str, str]]:
    with page.expect_download() as info:
        page.locator(f'button[data-csv="{name}"]').click()
    text = Path(info.value.path()).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_downloads_hold_the_rows_the_tables_show(
    page: Page, served: Served, seeded: Any
) -> None:
    sign_in(page, served)
    wait_loaded(page)
    for name, key in (("models", "model"), ("tasks", "task")):
        shown = table(page, name)
        rows = download_csv(page, name)
        assert [r[key] for r in rows] == list(shown)  # same rows, same order
        for r in rows:
            assert r["cost"] == shown[r[key]]["cost"] and r["calls"] == shown[r[key]]["calls"]
    job_id = next(e["job_id"] for e in seeded if e["task"] == XSS)
    page.goto(f"{served.url}/jobs/{job_id}")
    page.locator('[data-table="job-calls"] tbody tr[data-row]').first.wait_for()
    rows = download_csv(page, "job-calls")
    answer = served.api(f"/api/admin/jobs/{job_id}/ai-costs")
    assert [r["task"] for r in rows] == [c["task"] for c in answer["calls"]]
    assert [r["cost"] for r in rows] == [c["cost"] or "" for c in answer["calls"]]
    assert rows[0]["task"] == XSS  # kept as the text it is


# -- custom elements --------------------------------------------------------------


def test_custom_elements_work_on_a_plain_page(page: Page, served: Served, seeded: Any) -> None:
    job_id = next(e["job_id"] for e in seeded if e["task"] == XSS)
    page.route(
        served.url + "/embed-test.html",
        lambda route: route.fulfill(
            body=EMBED_PAGE.read_text(),
            content_type="text/html",
            headers={"Content-Security-Policy": CSP},
        ),
    )
    page.goto(served.url + "/embed-test.html")
    page.evaluate(
        """([token, job, image]) => {
            const hosts = 'ailedger-job-costs, ailedger-image-costs';
            for (const el of document.querySelectorAll(hosts)) el.setAttribute('token', token);
            document.getElementById('job').setAttribute('job-id', job);
            document.getElementById('image').setAttribute('image-id', image);
        }""",
        [served.token, job_id, IMAGE_ID],
    )
    job = served.api(f"/api/admin/jobs/{job_id}/ai-costs")
    image = served.api(f"/api/admin/images/{IMAGE_ID}/ai-costs")
    rows = page.locator('ailedger-job-costs [data-table="job-calls"] tbody tr[data-row]')
    expect(rows).to_have_count(job["totals"]["calls"])
    expect(page.locator('ailedger-job-costs [data-kpi="cost"]')).to_have_attribute(
        "data-value", job["totals"]["cost"]
    )
    expect(page.locator('ailedger-image-costs [data-kpi="cost"]')).to_have_attribute(
        "data-value", image["total"]["cost"]
    )
    assert page.locator('img[src="x"]').count() == 0 and page.dialogs == []  # type: ignore[attr-defined]

"""Budgets: each threshold is told once per period, signed, right across restarts and
evaluators running side by side; a new period starts fresh."""

from __future__ import annotations

import hashlib
import hmac
import threading
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from ailedger.ops import alerts, budgets, outbox
from ailedger.settings import Settings
from tests.receivers import receiver

SECRET = "whsec-test"
#: Late in the day, so that the projection (spend / elapsed share) never exceeds the limit.
LATE = datetime(2026, 3, 10, 23, 0, tzinfo=UTC)
#: For a command that runs at the real time of day: projected overruns are not told
#: before the period's end, so only the thresholds fire.
THRESHOLDS_ONLY = {"AILEDGER_PROJECTION_MIN_ELAPSED": "1"}


def spend(
    db: psycopg.Connection[Any],
    at: datetime,
    cost: str | None,
    *,
    task: str = "material_classification",
    model: str = "claude-3-5-haiku-20241022",
    provider: str = "anthropic",
    job_id: str | None = None,
) -> None:
    """One stored call; the rollup trigger counts it like a worker's insert."""
    db.execute(
        "INSERT INTO ai_call_logs (id, timestamp, task, model, provider, input_tokens, cost,"
        " cost_source, job_id) VALUES (%s, %s, %s, %s, %s, 100, %s, %s, %s)",
        (uuid.uuid4(), at, task, model, provider, cost,
         "unpriced" if cost is None else "reported", job_id),
    )  # fmt: skip


@pytest.fixture
def alert_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "webhook_secret": SecretStr(SECRET),
            "outbox_backoff_base_s": 0.01,
            "outbox_backoff_cap_s": 0.05,
            # Only budgets here: rules are tested in test_alerts.py.
        }
    )


def no_rules(db: psycopg.Connection[Any]) -> None:
    db.execute("UPDATE alert_rules SET enabled = false")


def run(db: psycopg.Connection[Any], settings: Settings, now: datetime) -> None:
    alerts.evaluate(db, settings, now=now)
    outbox.deliver(db, settings)


def test_day_budget_tells_50_80_100_once_each_signed(db, alert_settings) -> None:  # type: ignore[no-untyped-def]
    no_rules(db)
    with receiver() as hook:
        budget = budgets.add_budget(
            db, scope="all", period="day", limit_usd=Decimal(10), notify=[hook.url]
        )
        day = LATE.replace(hour=8)
        spend(db, day, "4.00")
        run(db, alert_settings, LATE)
        assert hook.posts == []  # 40%
        for cost in ("2.00", "3.00", "2.50"):  # 60%, 90%, 115%
            spend(db, day, cost)
            run(db, alert_settings, LATE)
            run(db, alert_settings, LATE)  # a second look decides nothing new
        thresholds = [p.json["alert"]["threshold"] for p in hook.posts]
        assert thresholds == ["50", "80", "100"]
        for post in hook.posts:
            expected = hmac.new(SECRET.encode(), post.body, hashlib.sha256).hexdigest()
            assert post.headers["X-Ailedger-Signature"] == f"sha256={expected}"
            assert post.headers["X-Ailedger-Timestamp"].isdigit()
            assert post.json["alert"]["budget_id"] == budget.id
        assert "$11.50 spent" in hook.posts[2].json["alert"]["summary"]

        # A restarted evaluator (a new connection, nothing in memory) sends nothing again.
        with psycopg.connect(alert_settings.database_url, autocommit=True) as fresh:
            run(fresh, alert_settings, LATE + timedelta(minutes=30))
        assert len(hook.posts) == 3

        # The next day starts fresh: 60% of it is the 50% alert again, for that day.
        tomorrow = LATE + timedelta(days=1)
        spend(db, tomorrow.replace(hour=1), "6.00")
        run(db, alert_settings, tomorrow)
        assert [p.json["alert"]["threshold"] for p in hook.posts] == ["50", "80", "100", "50"]
        assert hook.posts[3].json["alert"]["period_start"] == "2026-03-11T00:00:00+00:00"


def test_evaluators_and_deliverers_side_by_side_send_each_once(db, alert_settings) -> None:  # type: ignore[no-untyped-def]
    no_rules(db)
    with receiver() as hook:
        for period in ("day", "week", "month"):
            budgets.add_budget(
                db, scope="task=material_classification", period=period,
                limit_usd=Decimal(5), notify=[hook.url],
            )  # fmt: skip
        spend(db, LATE.replace(hour=2), "6.00")  # every threshold of the three budgets
        spend(db, LATE.replace(hour=2), "50.00", task="other_task")  # not in scope
        barrier = threading.Barrier(4)
        errors: list[BaseException] = []

        def evaluator() -> None:
            try:
                with psycopg.connect(alert_settings.database_url, autocommit=True) as conn:
                    barrier.wait(10)
                    alerts.evaluate(conn, alert_settings, now=LATE)
                    outbox.deliver(conn, alert_settings)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=evaluator) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        outbox.deliver(db, alert_settings)
        told = sorted((p.json["alert"]["name"], p.json["alert"]["threshold"]) for p in hook.posts)
        assert len(told) == 9 and len(set(told)) == 9  # 3 budgets x 3 thresholds, each once
        ids = [p.headers["X-Ailedger-Delivery"] for p in hook.posts]
        assert len(set(ids)) == len(ids)


def test_projected_overrun_is_an_alert_of_its_own(db, alert_settings) -> None:  # type: ignore[no-untyped-def]
    no_rules(db)
    with receiver() as hook:
        budgets.add_budget(db, scope="all", period="day", limit_usd=Decimal(10), notify=[hook.url])
        morning = LATE.replace(hour=6)  # a quarter of the day gone
        spend(db, morning.replace(hour=1), "3.00")  # 30%: at this rate the day ends at $12
        run(db, alert_settings, morning)
        run(db, alert_settings, morning + timedelta(hours=1))
        (post,) = hook.posts
        assert post.json["alert"]["kind"] == "budget_projection"
        assert "ends at $12.00" in post.json["alert"]["summary"]


def test_per_job_ceiling_names_the_job_once(db, alert_settings) -> None:  # type: ignore[no-untyped-def]
    no_rules(db)
    with receiver() as hook:
        budget = budgets.add_budget(
            db, scope="job", period="day", limit_usd=Decimal(2), notify=[hook.url],
            thresholds=[Decimal(100)],
        )  # fmt: skip
        big, small = str(uuid.uuid4()), str(uuid.uuid4())
        for _ in range(3):
            spend(db, LATE.replace(hour=3), "0.90", job_id=big)  # $2.70
            spend(db, LATE.replace(hour=3), "0.10", job_id=small)
        run(db, alert_settings, LATE)
        spend(db, LATE + timedelta(hours=1, minutes=30), "0.50", job_id=big)  # into the next day
        run(db, alert_settings, LATE + timedelta(hours=2))
        (post,) = hook.posts
        assert post.json["alert"]["scope"] == big and big in post.json["alert"]["summary"]
        status = budgets.budget_status(db, budget, now=LATE)
        assert status.spent == Decimal("3.20") and status.to_dict()["jobs_over_limit"] == [big]


def test_bad_budgets_are_refused_with_what_to_do(db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(budgets.BudgetError, match="task=NAME"):
        budgets.add_budget(db, scope="team=x", period="day", limit_usd=Decimal(1))
    with pytest.raises(budgets.BudgetError, match="day, week or month"):
        budgets.add_budget(db, scope="all", period="year", limit_usd=Decimal(1))
    with pytest.raises(budgets.BudgetError, match="positive"):
        budgets.add_budget(db, scope="all", period="day", limit_usd=Decimal(0))
    with pytest.raises(budgets.BudgetError, match="http"):
        budgets.add_budget(db, scope="all", period="day", limit_usd=Decimal(1), notify=["x"])
    assert budgets.list_budgets(db) == []

"""Alert rules and delivery: a receiver that was down gets everything later, in order; one
that keeps failing has its messages marked, not dropped; an unpriced model is named and
resolves once its price is in and `reprice` has run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from ailedger.ops import alerts, budgets, outbox
from ailedger.ops.reprice import reprice
from ailedger.settings import Settings
from tests.faults import run_ailedger, wait_for
from tests.receivers import receiver
from tests.test_budgets import LATE, THRESHOLDS_ONLY, no_rules, spend


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return settings.model_copy(update={"outbox_backoff_base_s": 0.02, "outbox_backoff_cap_s": 0.1})


def test_receiver_down_for_a_while_gets_everything_later_in_order(db, fast) -> None:  # type: ignore[no-untyped-def]
    no_rules(db)
    with receiver() as hook, receiver() as other:
        budgets.add_budget(
            db, scope="all", period="day", limit_usd=Decimal(10), notify=[hook.url, other.url]
        )
        hook.status = 503  # down
        for cost in ("6", "3", "2"):
            spend(db, LATE.replace(hour=1), cost)
            alerts.evaluate(db, fast, now=LATE)
            outbox.deliver(db, fast)
        assert hook.posts == [] and hook.refused >= 1
        # The other receiver is not held up by the one that is down.
        assert [p.json["alert"]["threshold"] for p in other.posts] == ["50", "80", "100"]
        hook.status = 200  # back
        wait_for(lambda: outbox.deliver(db, fast) and len(hook.posts) == 3, timeout=20)
        assert [p.json["alert"]["threshold"] for p in hook.posts] == ["50", "80", "100"]
        ids = [int(p.headers["X-Ailedger-Delivery"]) for p in hook.posts]
        assert ids == sorted(ids)


def test_receiver_that_keeps_failing_has_its_messages_marked_not_dropped(db, fast) -> None:  # type: ignore[no-untyped-def]
    no_rules(db)
    fast = fast.model_copy(update={"outbox_max_attempts": 3})
    with receiver() as hook:
        budgets.add_budget(db, scope="all", period="day", limit_usd=Decimal(10), notify=[hook.url])
        hook.status = 500
        spend(db, LATE.replace(hour=1), "9")  # 50% and 80%: two messages
        alerts.evaluate(db, fast, now=LATE)

        def all_marked() -> bool:
            outbox.deliver(db, fast)
            row = db.execute(
                "SELECT count(*) FROM alert_outbox WHERE failed_at IS NULL AND delivered_at IS NULL"
            ).fetchone()
            return row == (0,)

        wait_for(all_marked, timeout=20)
        rows = db.execute(
            "SELECT attempts, last_error FROM alert_outbox WHERE failed_at IS NOT NULL ORDER BY id"
        ).fetchall()
        assert len(rows) == 2  # both kept
        assert rows[0] == (3, "HTTP 500 Internal Server Error")
        assert rows[1][0] == 0 and "failed 3 times" in rows[1][1]
        assert hook.refused == 3
        # Once the receiver is fixed, the operator sends them again, in order.
        hook.status = 200
        assert outbox.retry_failed(db) == 2
        outbox.deliver(db, fast)
        assert [p.json["alert"]["threshold"] for p in hook.posts] == ["50", "80"]


def test_unpriced_model_is_named_then_resolved_after_override_and_reprice(db, fast) -> None:  # type: ignore[no-untyped-def]
    no_rules(db)
    with receiver() as hook:
        db.execute(
            "UPDATE alert_rules SET enabled = true, notify = %s WHERE name = 'unpriced_model'",
            ([hook.url],),
        )
        now = datetime.now(UTC)
        for _ in range(3):
            db.execute(
                "INSERT INTO ai_call_logs (id, timestamp, task, model, provider, input_tokens,"
                " output_tokens, cost, cost_source) VALUES (gen_random_uuid(), %s, 'enrich',"
                " 'acme-llm', 'acme', 1000000, 0, NULL, 'unpriced')",
                (now - timedelta(hours=2),),
            )
        spend(db, now - timedelta(hours=2), "1.00")  # a priced model: not named
        for _ in range(2):
            alerts.evaluate(db, fast, now=now)
            outbox.deliver(db, fast)
        ((event, summary),) = hook.events()
        assert event == "firing"
        assert "acme-llm" in summary and "3 call(s)" in summary
        assert "price_overrides" in summary and "ailedger reprice" in summary

        db.execute(
            "INSERT INTO price_overrides (provider, model, input_mtok, output_mtok)"
            " VALUES ('acme', 'acme-llm', 0.5, 1)"
        )
        alerts.evaluate(db, fast, now=now)  # the price exists, but the calls are not repriced
        assert len(hook.events()) == 1
        assert reprice(fast.database_url).newly_priced == 3
        for _ in range(2):
            alerts.evaluate(db, fast, now=now + timedelta(minutes=1))
            outbox.deliver(db, fast)
        assert [e for e, _ in hook.events()] == ["firing", "resolved"]
        active = alerts.list_alerts(db, active=True)
        assert active == []


def test_fallback_rate_per_task_with_a_minimum_of_calls(db, fast) -> None:  # type: ignore[no-untyped-def]
    no_rules(db)
    with receiver() as hook:
        db.execute(
            "UPDATE alert_rules SET enabled = true, notify = %s,"
            ' params = \'{"max_rate": 0.3, "window_minutes": 15, "min_calls": 10,'
            ' "by": "task"}\' WHERE name = \'fallback_rate\'',
            ([hook.url],),
        )
        now = datetime(2026, 3, 10, 12, 0, 30, tzinfo=UTC)
        for i in range(20):  # classify: 8 of 20 fell back (40%); enrich: 5 of 5, too few calls
            db.execute(
                "INSERT INTO ai_call_logs (id, timestamp, task, model, cost, cost_source, action)"
                " VALUES (gen_random_uuid(), %s, %s, 'm', 0.01, 'reported', %s)",
                (now - timedelta(minutes=5), "classify",
                 "fallback_to_rules" if i < 8 else "use_ai_result"),
            )  # fmt: skip
        for _ in range(5):
            db.execute(
                "INSERT INTO ai_call_logs (id, timestamp, task, model, cost, cost_source, action)"
                " VALUES (gen_random_uuid(), %s, 'enrich', 'm', 0.01, 'reported',"
                " 'fallback_to_rules')",
                (now - timedelta(minutes=5),),
            )
        alerts.evaluate(db, fast, now=now)
        outbox.deliver(db, fast)
        ((_, summary),) = hook.events()
        assert "task classify" in summary and "40%" in summary and "8 of 20" in summary
        alerts.evaluate(db, fast, now=now + timedelta(minutes=30))  # the window moved on
        outbox.deliver(db, fast)
        assert [e for e, _ in hook.events()] == ["firing", "resolved"]


def test_slack_receivers_get_slacks_format_with_the_data_as_plain_text(db, fast) -> None:  # type: ignore[no-untyped-def]
    no_rules(db)
    sent: list[tuple[str, bytes]] = []
    budgets.add_budget(
        db, scope="task=<b>bold</b>", period="day", limit_usd=Decimal(1),
        notify=["https://hooks.slack.com/services/T000/B000/XXXX"],
    )  # fmt: skip
    spend(db, LATE.replace(hour=1), "2", task="<b>bold</b>")
    alerts.evaluate(db, fast, now=LATE)
    outbox.deliver(db, fast, sender=lambda url, body, headers, timeout: sent.append((url, body)))
    assert len(sent) == 3
    message = orjson.loads(sent[0][1])
    assert message["text"].startswith("Alert: budget #")
    assert "<b>bold</b>" in message["text"]
    assert {b["text"]["type"] for b in message["blocks"] if "text" in b} == {"plain_text"}


def test_alerts_run_once_through_the_cli(settings, db) -> None:  # type: ignore[no-untyped-def]
    no_rules(db)
    with receiver() as hook:
        budgets.add_budget(db, scope="all", period="day", limit_usd=Decimal(1), notify=[hook.url])
        spend(db, datetime.now(UTC), "0.60")
        # Thresholds only: early in a UTC day, $0.60 would also project past $1.
        done = run_ailedger(
            settings, "alerts", "run", "--once", AILEDGER_WEBHOOK_SECRET="k", **THRESHOLDS_ONLY
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert "1 fired" in done.stdout and "1 delivered" in done.stdout
        (post,) = hook.posts
        assert post.json["alert"]["threshold"] == "50"
        listed = run_ailedger(settings, "alerts", "list", "--json")
        assert listed.returncode == 0, listed.stderr[-2000:]
        data = orjson.loads(listed.stdout)
        assert {r["name"] for r in data["rules"]} >= {"cost_spike", "unpriced_model"}
        assert [a["threshold"] for a in data["active"]] == ["50"]

"""Retention: old payloads and rows go, the history (rollups, the API's totals) stays;
budgets through the real CLI and the admin API."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb
from pydantic import SecretStr

from ailedger.api.app import create_app
from ailedger.ops.retention import run_retention
from tests.faults import run_ailedger
from tests.receivers import receiver
from tests.test_budgets import THRESHOLDS_ONLY

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOW = datetime.now(UTC).replace(second=0, microsecond=0)


@pytest.fixture
def api(settings) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(create_app(settings.model_copy(update={"api_token": SecretStr(TOKEN)}))) as c:
        yield c


def seed(db, ages_days: list[float], now: datetime = NOW) -> list[str]:  # type: ignore[no-untyped-def]
    ids = []
    for i, age in enumerate(ages_days):
        ids.append(str(uuid.uuid4()))
        db.execute(
            "INSERT INTO ai_call_logs (id, timestamp, task, model, input_tokens, output_tokens,"
            " cost, cost_source, latency_ms, request_data, response_data)"
            " VALUES (%s, %s, 'extract', 'gpt-4o', 100, 10, %s, 'reported', 900, %s, %s)",
            (ids[-1], now - timedelta(days=age), Decimal("0.25") * (i + 1),
             Jsonb({"prompt": f"page {i}"}), Jsonb({"text": "ok"})),
        )  # fmt: skip
    return ids


def totals(api: TestClient) -> dict:  # type: ignore[type-arg]
    got = api.get(
        "/api/admin/ai-metrics",
        params={"from": (NOW - timedelta(days=200)).isoformat(), "to": NOW.isoformat()},
        headers=AUTH,
    )
    assert got.status_code == 200, got.text
    return got.json()["totals"]  # type: ignore[no-any-return]


def test_old_payloads_go_newer_stay_totals_unchanged(settings, db, api) -> None:  # type: ignore[no-untyped-def]
    ids = seed(db, [100, 45, 31, 29, 2])  # $0.25 … $1.25: $3.75 in all
    before = totals(api)
    assert Decimal(before["cost"]) == Decimal("3.75") and before["calls"] == 5
    rollups_before = db.execute("SELECT * FROM ai_call_rollups ORDER BY 1, 2, 3, 4, 5").fetchall()

    policy = settings.model_copy(update={"retention_batch_size": 2})  # several batches
    dry = run_retention(db, policy, dry_run=True)
    assert dry.payloads_dropped == 3
    nulled = db.execute("SELECT count(*) FROM ai_call_logs WHERE request_data IS NULL")
    assert nulled.fetchone() == (0,)  # a dry run changes nothing

    done = run_retention(db, policy)
    assert done.payloads_dropped == 3 and done.rows_deleted == 0
    kept = dict(db.execute("SELECT id::text, request_data FROM ai_call_logs").fetchall())
    assert [kept[i] for i in ids] == [None, None, None, {"prompt": "page 3"}, {"prompt": "page 4"}]
    assert run_retention(db, policy).payloads_dropped == 0  # nothing left to do

    # Raw rows older than 40 days deleted: the history in the rollups stays whole.
    rows = policy.model_copy(update={"retention_rows_days": 40})
    assert run_retention(db, rows).rows_deleted == 2
    assert db.execute("SELECT count(*) FROM ai_call_logs").fetchone() == (3,)
    after = db.execute("SELECT * FROM ai_call_rollups ORDER BY 1, 2, 3, 4, 5").fetchall()
    assert after == rollups_before
    assert totals(api) == before


def test_retention_through_the_cli_says_what_it_removed(settings, db) -> None:  # type: ignore[no-untyped-def]
    seed(db, [40, 1])
    db.execute(
        "INSERT INTO ai_call_rejects (stream_id, stream, reason, raw, last_seen)"
        " VALUES ('1-1', %s, 'bad', '\\x00', NOW() - interval '60 days')",
        (settings.stream,),
    )
    dry = run_ailedger(settings, "retention", "run", "--dry-run")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "payloads: would drop from 1 call(s)" in dry.stdout
    assert "raw rows: kept forever" in dry.stdout
    assert "dead letters: would purge 1" in dry.stdout
    done = run_ailedger(settings, "retention", "run", AILEDGER_RETENTION_ROWS_DAYS="30")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "payloads: dropped from 1 call(s)" in done.stdout
    assert "raw rows: deleted 1 call(s)" in done.stdout
    assert "dead letters: purged 1" in done.stdout
    assert db.execute("SELECT count(*) FROM ai_call_logs").fetchone() == (1,)


def test_budget_add_list_remove_through_the_cli_and_the_api(settings, db, api) -> None:  # type: ignore[no-untyped-def]
    slack = "https://hooks.slack.com/services/T1/B2/secretpart"
    added = run_ailedger(
        settings, "budget", "add", "--scope", "model=gpt-4o", "--period", "month",
        "--limit", "100", "--notify", slack, "--notify", "https://example.com/hook",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr[-2000:]
    assert "added budget #1 (model gpt-4o, $100.00 per month)" in added.stdout
    bad = run_ailedger(settings, "budget", "add", "--scope", "team=a", "--period", "day",
                       "--limit", "1")  # fmt: skip
    assert bad.returncode == 1 and "task=NAME" in bad.stdout
    seed(db, [0], datetime.now(UTC))  # $0.25 this month on gpt-4o, even on the 1st at 00:00

    listed = run_ailedger(settings, "budget", "list", "--json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    (b,) = orjson.loads(listed.stdout)
    assert (b["scope"], b["period"], Decimal(b["spent_usd"]), b["percent"]) == (
        "model=gpt-4o", "month", Decimal("0.25"), "0.3",
    )  # fmt: skip
    assert b["projection_usd"] is not None
    table = run_ailedger(settings, "budget", "list", COLUMNS="200")
    assert "model=gpt-4o" in table.stdout and "secretpart" not in table.stdout

    got = api.get("/api/admin/budgets", headers=AUTH)
    assert got.status_code == 200, got.text
    (shown,) = got.json()
    assert Decimal(shown["spent_usd"]) == Decimal("0.25")
    assert "secretpart" not in got.text
    alerts = api.get("/api/admin/alerts", headers=AUTH)
    assert alerts.status_code == 200 and alerts.json() == {"active": [], "history": []}

    removed = run_ailedger(settings, "budget", "remove", "1")
    assert removed.returncode == 0 and "removed budget #1" in removed.stdout
    again = run_ailedger(settings, "budget", "remove", "1")
    assert again.returncode == 1 and "no budget #1" in again.stdout


def test_jobs_worker_schedules_evaluation_and_delivers(settings, db) -> None:  # type: ignore[no-untyped-def]
    db.execute("UPDATE alert_rules SET enabled = false")
    with receiver() as hook:
        run_ailedger(settings, "budget", "add", "--scope", "all", "--period", "day",
                     "--limit", "1", "--notify", hook.url)  # fmt: skip
        db.execute(
            "INSERT INTO ai_call_logs (id, timestamp, task, model, cost, cost_source)"
            " VALUES (gen_random_uuid(), NOW(), 't', 'm', 0.55, 'reported')"
        )
        # Thresholds only: early in a UTC day, $0.55 would also project past $1.
        ran = run_ailedger(settings, "jobs", "--burst", timeout=120, **THRESHOLDS_ONLY)
        assert ran.returncode == 0, ran.stderr[-3000:]
        assert [p.json["alert"]["threshold"] for p in hook.posts] == ["50"]


def test_each_deployment_on_a_redis_keeps_its_own_cron_history(settings, redis_client) -> None:  # type: ignore[no-untyped-def]
    """RQ records what each cron job enqueued under the job's name: one per deployment."""
    from rq import Queue
    from rq.cron import get_cron_job_ids
    from rq.job import Job

    from ailedger.ops.schedule import build_scheduler
    from producer.constants import maintenance_queue

    other = settings.model_copy(update={"stream": f"{settings.stream}-other"})
    deployments = (settings, other)
    try:
        for deployment in deployments:
            build_scheduler(redis_client, deployment).enqueue_jobs()
        seen = set()
        for deployment in deployments:
            ids = get_cron_job_ids(f"{deployment.stream}:evaluate_job", redis_client)
            assert len(ids) == 1, ids
            job = Job.fetch(ids[0], connection=redis_client)
            assert job.origin == maintenance_queue(deployment.stream)
            assert job.kwargs["stream"] == deployment.stream
            seen.add(job.id)
        assert len(seen) == 2
    finally:  # the jobs themselves, which no worker here will run
        for deployment in deployments:
            Queue(maintenance_queue(deployment.stream), connection=redis_client).empty()

"""The Jobs page and the average cost per job read per-job rollups that stay equal to
the raw rows: through inserts, a batch delivered twice, re-pricing and retention."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from ailedger.api.app import create_app
from ailedger.settings import Settings

TOKEN = "jobs-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOW = datetime.now(UTC).replace(microsecond=0)
JOB_A = uuid.UUID("aaaaaaaa-0000-4000-8000-000000000001")
JOB_B = uuid.UUID("bbbbbbbb-0000-4000-8000-000000000002")


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"api_token": SecretStr(TOKEN)}))
    with TestClient(app) as client:
        yield client


def insert(db: psycopg.Connection[Any], rows: list[dict[str, Any]]) -> None:
    """One statement, as a worker's batch: INSERT … ON CONFLICT DO NOTHING."""
    db.execute(
        "INSERT INTO ai_call_logs (id, timestamp, job_id, task, model, provider, input_tokens,"
        " output_tokens, cost, cost_source, latency_ms, action, error_message)"
        " SELECT * FROM unnest(%s::uuid[], %s::timestamptz[], %s::uuid[], %s::text[],"
        " %s::text[], %s::text[], %s::int[], %s::int[], %s::numeric[], %s::text[], %s::int[],"
        " %s::text[], %s::text[]) ON CONFLICT DO NOTHING",
        [
            [r[k] for r in rows]
            for k in ("id", "ts", "job", "task", "model", "provider", "inp", "out", "cost",
                      "source", "latency", "action", "error")
        ],
    )  # fmt: skip


def call(
    job: uuid.UUID, minutes_ago: float, task: str, cost: str | None, **extra: Any
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(), "ts": NOW - timedelta(minutes=minutes_ago), "job": job,
        "task": task, "model": "claude-3-5-haiku-20241022", "provider": "anthropic",
        "inp": 1_000, "out": 200, "cost": cost, "source": "unpriced" if cost is None else "catalog",
        "latency": 1_500, "action": "use_ai_result", "error": None, **extra,
    }  # fmt: skip


def raw_jobs(db: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    """The independent expectation: each job's figures grouped straight from the raw rows."""
    rows = db.execute(
        "SELECT job_id::text, count(*), sum(input_tokens + output_tokens), coalesce(sum(cost), 0),"
        " count(*) FILTER (WHERE cost IS NULL), count(*) FILTER (WHERE action ="
        " 'fallback_to_rules'), count(*) FILTER (WHERE error_message IS NOT NULL)"
        " FROM ai_call_logs GROUP BY 1"
    ).fetchall()
    keys = ("calls", "tokens", "cost", "unpriced_calls", "fallbacks", "errors")
    return {r[0]: dict(zip(keys, r[1:], strict=True)) for r in rows}


def shown_jobs(api: TestClient) -> dict[str, dict[str, Any]]:
    span = {
        "from": (NOW - timedelta(hours=2)).isoformat(),
        "to": (NOW + timedelta(minutes=1)).isoformat(),
    }
    body = api.get("/api/admin/jobs", params=span, headers=AUTH).json()
    keys = ("calls", "tokens", "cost", "unpriced_calls", "fallbacks", "errors")
    return {
        j["job_id"]: {k: Decimal(j[k]) if k == "cost" else j[k] for k in keys} for j in body["jobs"]
    }


def test_job_figures_follow_the_raw_rows(api: TestClient, db: psycopg.Connection[Any]) -> None:
    batch = [
        call(JOB_A, 30, "classification", "0.0016"),
        call(JOB_A, 29, "classification", "0.0016", action="fallback_to_rules"),
        call(JOB_A, 28, "enrichment", None),
        call(JOB_B, 10, "classification", "0.0040", error="timeout"),
    ]
    insert(db, batch)
    insert(db, batch)  # delivered again: nothing new
    assert shown_jobs(api) == raw_jobs(db)
    a = shown_jobs(api)[str(JOB_A)]
    assert a["calls"] == 3 and a["cost"] == Decimal("0.0032") and a["unpriced_calls"] == 1

    # Re-pricing fills the unpriced call: the job's cost and unpriced count move with it.
    db.execute("UPDATE ai_call_logs SET cost = 0.0009, cost_source = 'override' WHERE cost IS NULL")
    assert shown_jobs(api) == raw_jobs(db)
    assert shown_jobs(api)[str(JOB_A)]["cost"] == Decimal("0.0041")

    # The overview's average: (A 0.0041 + B 0.0040) / 2 jobs.
    span = {"from": (NOW - timedelta(hours=2)).isoformat(), "to": NOW.isoformat()}
    summary = api.get("/api/admin/jobs-summary", params=span, headers=AUTH).json()
    assert summary["jobs"] == 2 and Decimal(summary["average_cost"]) == Decimal("0.00405")
    only = api.get("/api/admin/jobs-summary", params={**span, "task": "enrichment"}, headers=AUTH)
    assert only.json()["jobs"] == 1 and Decimal(only.json()["cost"]) == Decimal("0.0009")


def test_a_range_before_a_job_does_not_list_it(
    api: TestClient, db: psycopg.Connection[Any]
) -> None:
    insert(db, [call(JOB_A, 30, "classification", "0.0016")])
    before = {
        "from": (NOW - timedelta(hours=3)).isoformat(),
        "to": (NOW - timedelta(hours=1)).isoformat(),
    }
    assert api.get("/api/admin/jobs", params=before, headers=AUTH).json()["jobs"] == []
    summary = api.get("/api/admin/jobs-summary", params=before, headers=AUTH).json()
    assert summary["jobs"] == 0 and summary["average_cost"] is None

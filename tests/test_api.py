"""The metrics API: every figure equals what the raw rows say, twice delivered or not."""

from __future__ import annotations

import math
import random
import re
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.rows import dict_row
from pydantic import SecretStr
from typer.testing import CliRunner

from ailedger.api.app import create_app
from ailedger.api.rollups import floor_time
from ailedger.cli.commands import app as cli
from ailedger.demo.traffic import generate_jobs
from ailedger.ops.reprice import reprice
from producer import AICallLogger

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
START = datetime(2025, 5, 1, 9, 13, tzinfo=UTC)
ALL = {"from": "2025-04-01T00:00:00Z", "to": "2025-06-01T00:00:00Z"}


@pytest.fixture
def api(settings) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    app = create_app(settings.model_copy(update={"api_token": SecretStr(TOKEN)}))
    with TestClient(app) as client:
        yield client


@pytest.fixture
def seeded(settings, redis_client, run_burst) -> list[tuple[bytes, dict[bytes, bytes]]]:  # type: ignore[no-untyped-def]
    """Two days of platform traffic through the real pipeline; returns the stream entries."""
    logger = AICallLogger(settings.redis_url, stream=settings.stream)
    for event in generate_jobs(random.Random(7), 2_500, start=START, jobs_per_hour=0.4):
        logger.log(**event)
    assert logger.flush(30)
    logger.close()
    entries = redis_client.xrange(settings.stream)
    assert len(entries) == 2_500
    run_burst()
    return entries  # type: ignore[no-any-return]


def raw_rows(db: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return db.cursor(row_factory=dict_row).execute("SELECT * FROM ai_call_logs").fetchall()


def nearest_rank(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def check_stats(got: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """One stats block of the API against the same figures computed from raw rows."""
    n = len(rows)
    tokens = {
        k: sum(r[k] or 0 for r in rows)
        for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    }
    errors = sum(r["error_message"] is not None for r in rows)
    fallbacks = sum(r["action"] == "fallback_to_rules" for r in rows)
    assert got["calls"] == n
    assert {k: got[k] for k in tokens} == tokens
    # input_tokens includes the cache tokens: the total is input + output, as billed.
    assert got["tokens"] == tokens["input_tokens"] + tokens["output_tokens"]
    assert Decimal(got["cost"]) == sum(
        (r["cost"] for r in rows if r["cost"] is not None), Decimal(0)
    )
    assert got["unpriced_calls"] == sum(r["cost"] is None for r in rows)
    assert (got["errors"], got["fallbacks"]) == (errors, fallbacks)
    assert got["error_rate"] == pytest.approx(errors / n)
    assert got["fallback_rate"] == pytest.approx(fallbacks / n)
    latencies = [r["latency_ms"] for r in rows if r["latency_ms"] is not None]
    latency = got["latency_ms"]
    assert latency["mean"] == pytest.approx(sum(latencies) / len(latencies), rel=1e-12)
    assert latency["max"] == max(latencies)
    for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        true = nearest_rank(latencies, q)
        # The stated bucket error: never below the true value, at most 25% above it.
        assert true <= latency[name] <= max(true * 1.25, true), (name, true, latency[name])
    scores = [r["confidence_score"] for r in rows if r["confidence_score"] is not None]
    assert got["scored_calls"] == len(scores)
    if scores:
        mean = float(sum(scores) / len(scores))
        assert got["confidence_mean"] == pytest.approx(mean, rel=1e-12)
    else:
        assert got["confidence_mean"] is None


def group(rows: list[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[r[key]].append(r)
    return out


def check_metrics(body: dict[str, Any], rows: list[dict[str, Any]], bucket: str) -> None:
    check_stats(body["totals"], rows)
    assert {m["model"] for m in body["by_model"]} == {r["model"] for r in rows}
    for stats in body["by_model"]:
        check_stats(stats, group(rows, "model")[stats["model"]])
    assert {t["task"] for t in body["by_task"]} == {r["task"] for r in rows}
    for stats in body["by_task"]:
        check_stats(stats, group(rows, "task")[stats["task"]])

    expected: dict[datetime, dict[str, list[dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in rows:
        expected[floor_time(r["timestamp"], bucket)][r["model"]].append(r)
    seen = 0
    for point in body["timeline"]:
        start = datetime.fromisoformat(point["start"])
        by_model = expected.get(start, {})
        assert point["calls"] == sum(len(v) for v in by_model.values())
        assert set(point["by_model"]) == set(by_model)
        for model, model_rows in by_model.items():
            assert point["by_model"][model]["calls"] == len(model_rows)
            assert Decimal(point["by_model"][model]["cost"]) == sum(
                (r["cost"] or Decimal(0) for r in model_rows), Decimal(0)
            )
        seen += point["calls"]
    assert seen == len(rows)

    bins = Counter(
        min(int(r["confidence_score"] * 20), 19) for r in rows if r["confidence_score"] is not None
    )
    assert [b["calls"] for b in body["confidence_histogram"]] == [bins[i] for i in range(20)]
    reasons = Counter(
        re.sub(r"[0-9]+\.[0-9]+", "<n>", r["fallback_reason"] or "")[:200]
        for r in rows
        if r["action"] == "fallback_to_rules"
    )
    top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    assert [(f["reason"], f["calls"]) for f in body["top_fallback_reasons"]] == top


def test_every_figure_matches_the_raw_rows_even_after_a_second_delivery(
    api, seeded, db, redis_client, settings, run_burst
) -> None:
    rows = raw_rows(db)
    assert len(rows) == 2_500
    # An unaligned range: minutes and hours at both edges, whole days in between.
    lo, hi = START + timedelta(hours=3, minutes=17), START + timedelta(days=1, hours=9, minutes=42)
    window = {"from": lo.isoformat(), "to": hi.isoformat()}
    inside = [r for r in rows if lo <= r["timestamp"] < hi]
    answers = []
    for params, subset, bucket in (
        ({**ALL, "bucket": "day"}, rows, "day"),
        ({**ALL, "bucket": "week"}, rows, "week"),
        ({**window, "bucket": "hour"}, inside, "hour"),
        ({**window, "bucket": "minute"}, inside, "minute"),
    ):
        response = api.get("/api/admin/ai-metrics", params=params, headers=AUTH)
        assert response.status_code == 200, response.text
        check_metrics(response.json(), subset, bucket)
        answers.append(response.json())
    assert answers[0]["queue"]["lag"] == 0 and answers[0]["queue"]["pending"] == 0

    # The same events delivered again: nothing is stored or counted twice.
    for _id, fields in seeded:
        redis_client.xadd(settings.stream, fields)
    worker = run_burst()
    assert worker.counters.entries == 2_500 and worker.counters.inserted == 0
    assert len(raw_rows(db)) == 2_500
    (job_id, job_calls), (image_id, image_calls) = busiest(rows)
    check_job_costs(api, job_id, job_calls)
    check_image_costs(api, image_id, image_calls)
    for params, before in zip(
        (
            {**ALL, "bucket": "day"},
            {**ALL, "bucket": "week"},
            {**window, "bucket": "hour"},
            {**window, "bucket": "minute"},
        ),
        answers,
        strict=True,
    ):
        after = api.get("/api/admin/ai-metrics", params=params, headers=AUTH).json()
        assert {k: v for k, v in after.items() if k != "queue"} == {
            k: v for k, v in before.items() if k != "queue"
        }


def test_costs_follow_a_reprice(api, seeded, db, database_url) -> None:
    # CLIP is self-hosted: no catalog price, so its calls were stored unpriced.
    db.execute(
        "INSERT INTO price_overrides (provider, model, per_request)"
        " VALUES ('local', 'clip-vit-base-patch32', 0.0001)"
    )
    assert reprice(database_url).newly_priced > 0
    rows = raw_rows(db)
    assert not [r for r in rows if r["model"] == "clip-vit-base-patch32" and r["cost"] is None]
    body = api.get("/api/admin/ai-metrics", params={**ALL, "bucket": "day"}, headers=AUTH).json()
    check_metrics(body, rows, "day")


def test_filters_by_task_and_model(api, seeded, db) -> None:
    rows = raw_rows(db)
    tasks = ["image_vision_analysis", "image_validation"]
    params = {**ALL, "bucket": "day", "task": tasks}
    body = api.get("/api/admin/ai-metrics", params=params, headers=AUTH).json()
    check_metrics(body, [r for r in rows if r["task"] in tasks], "day")
    assert body["range"]["tasks"] == tasks
    model = "text-embedding-3-small"
    body = api.get("/api/admin/ai-metrics", params={**ALL, "model": model}, headers=AUTH).json()
    check_metrics(body, [r for r in rows if r["model"] == model], body["range"]["bucket"])


def check_job_costs(api: TestClient, job_id: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The job endpoint against the job's raw rows: each call, running and final totals."""
    calls = sorted(calls, key=lambda r: (r["timestamp"], r["id"]))
    body = api.get(f"/api/admin/jobs/{job_id}/ai-costs", headers=AUTH).json()
    assert [c["id"] for c in body["calls"]] == [str(r["id"]) for r in calls]
    running_cost, running_tokens = Decimal(0), 0
    for n, (got, row) in enumerate(zip(body["calls"], calls, strict=True), start=1):
        running_cost += row["cost"] or 0
        running_tokens += (row["input_tokens"] or 0) + (row["output_tokens"] or 0)
        assert (got["task"], got["model"], got["action"], got["latency_ms"]) == (
            row["task"],
            row["model"],
            row["action"],
            row["latency_ms"],
        )
        assert (Decimal(got["cost"]) if got["cost"] else None) == row["cost"]
        assert got["running_calls"] == n and got["running_tokens"] == running_tokens
        assert Decimal(got["running_cost"]) == running_cost
    totals = body["totals"]
    assert totals["calls"] == len(calls) and Decimal(totals["cost"]) == running_cost
    assert totals["tokens"] == running_tokens and not body["has_more"]
    assert totals["unpriced_calls"] == sum(r["cost"] is None for r in calls)
    return body  # type: ignore[no-any-return]


def check_image_costs(api: TestClient, image_id: str, calls: list[dict[str, Any]]) -> None:
    """The image endpoint against the image's raw rows: cost per step and in total."""
    body = api.get(f"/api/admin/images/{image_id}/ai-costs", headers=AUTH).json()
    steps = group(calls, "task")
    assert {s["task"] for s in body["steps"]} == set(steps)
    for step in body["steps"]:
        mine = steps[step["task"]]
        assert step["calls"] == len(mine)
        assert Decimal(step["cost"]) == sum((r["cost"] or Decimal(0) for r in mine), Decimal(0))
        assert step["models"] == sorted({r["model"] for r in mine})
    assert Decimal(body["total"]["cost"]) == sum(
        (r["cost"] or Decimal(0) for r in calls), Decimal(0)
    )
    assert body["total"]["calls"] == len(calls)
    assert body["job_ids"] == sorted({str(r["job_id"]) for r in calls})


def busiest(rows: list[dict[str, Any]]) -> tuple[tuple[str, list[Any]], tuple[str, list[Any]]]:
    """The job with the most calls and the image with the most steps."""
    job = max(group(rows, "job_id").items(), key=lambda kv: len(kv[1]))
    imaged = [r for r in rows if r["image_id"] is not None]
    image = max(group(imaged, "image_id").items(), key=lambda kv: len(group(kv[1], "task")))
    assert len(group(image[1], "task")) >= 3
    return job, image


def test_job_costs_list_every_call_in_order_with_running_totals(api, seeded, db) -> None:
    (job_id, calls), _ = busiest(raw_rows(db))
    body = check_job_costs(api, job_id, calls)
    # Polling: the next page keeps counting from where the first one stopped.
    page = api.get(
        f"/api/admin/jobs/{job_id}/ai-costs", params={"offset": 10, "limit": 5}, headers=AUTH
    ).json()
    assert page["has_more"] and [c["running_calls"] for c in page["calls"]] == [11, 12, 13, 14, 15]
    assert page["calls"] == body["calls"][10:15] and page["totals"] == body["totals"]


def test_image_costs_per_step_and_total(api, seeded, db) -> None:
    _, (image_id, calls) = busiest(raw_rows(db))
    check_image_costs(api, image_id, calls)


@pytest.mark.parametrize(
    "path",
    [
        "/api/admin/ai-metrics",
        "/api/admin/jobs/6f1c1f8e-3b1a-4d8e-9a53-0d8f3c2b1a77/ai-costs",
        "/api/admin/images/img-1/ai-costs",
    ],
)
def test_admin_endpoints_need_the_token(api, path: str) -> None:
    assert api.get(path).status_code == 401
    assert api.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert api.get(path, headers={"Authorization": TOKEN}).status_code == 401
    assert api.get(path, headers=AUTH).status_code == 200
    assert api.get("/healthz").status_code == 200


def test_the_api_connection_cannot_write(api, db) -> None:
    with api.app.state.backends.pool().connection() as conn:  # type: ignore[attr-defined]
        assert conn.execute("SELECT current_user").fetchone() == ("ailedger_reader",)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM ai_call_logs")
        # Even a read-write transaction has no privilege to change anything.
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("SET TRANSACTION READ WRITE")
            conn.execute(
                "INSERT INTO ai_call_logs (id, timestamp, task, model)"
                " VALUES (gen_random_uuid(), now(), 't', 'm')"
            )
        for table in ("ai_call_rollups", "price_overrides"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute("SET TRANSACTION READ WRITE")
                conn.execute(f"DELETE FROM {table}")
    assert db.execute("SELECT count(*) FROM ai_call_logs").fetchone() == (0,)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/admin/ai-metrics", {"bucket": "fortnight"}),
        ("/api/admin/ai-metrics", {"from": "yesterday-ish"}),
        ("/api/admin/ai-metrics", {"from": "2025-05-02", "to": "2025-05-01"}),
        ("/api/admin/ai-metrics", {"from": "2020-01-01", "to": "2025-01-01", "bucket": "minute"}),
        ("/api/admin/ai-metrics", {"from": "0001-01-01T00:00:00"}),
        ("/api/admin/ai-metrics", {"from": "0001-01-01T00:00:00+05:00", "to": "0001-01-02"}),
        ("/api/admin/ai-metrics", {"from": "9999-11-01", "to": "9999-12-31", "bucket": "month"}),
        ("/api/admin/ai-metrics", {"to": "999999999999999999999"}),
        ("/api/admin/jobs/not-a-uuid/ai-costs", {}),
        ("/api/admin/jobs/6f1c1f8e-3b1a-4d8e-9a53-0d8f3c2b1a77/ai-costs", {"limit": "0"}),
        ("/api/admin/jobs/6f1c1f8e-3b1a-4d8e-9a53-0d8f3c2b1a77/ai-costs", {"offset": "-1"}),
    ],
)
def test_bad_parameters_get_a_4xx_with_a_message(api, path: str, params: dict[str, str]) -> None:
    response = api.get(path, params=params, headers=AUTH)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["detail"]


def test_servers_away_give_503_and_a_null_queue_not_500(settings) -> None:
    away = settings.model_copy(
        update={"api_token": SecretStr(TOKEN), "redis_url": "redis://127.0.0.1:1/0"}
    )
    with TestClient(create_app(away)) as client:
        body = client.get("/api/admin/ai-metrics", headers=AUTH).json()
        assert body["queue"] is None and "Redis unavailable" in body["queue_error"]
    no_db = settings.model_copy(
        update={"api_token": SecretStr(TOKEN), "api_database_url": "postgresql://127.0.0.1:1/none"}
    )
    with TestClient(create_app(no_db)) as client:
        response = client.get("/api/admin/ai-metrics", headers=AUTH)
        assert response.status_code == 503 and "database unavailable" in response.json()["detail"]


def test_openapi_docs_are_served(api) -> None:
    assert api.get("/docs").status_code == 200
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/api/admin/ai-metrics", "/api/admin/jobs/{job_id}/ai-costs"} <= set(paths)


def test_serve_refuses_to_listen_beyond_loopback_without_a_token() -> None:
    result = CliRunner().invoke(
        cli, ["serve", "--host", "0.0.0.0"], env={"AILEDGER_API_TOKEN": None}
    )
    assert result.exit_code == 2 and "AILEDGER_API_TOKEN" in result.output


def test_serve_answers_on_loopback(settings) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        "AILEDGER_DATABASE_URL": settings.database_url,
        "AILEDGER_REDIS_URL": settings.redis_url,
        "AILEDGER_API_TOKEN": TOKEN,
        "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "ailedger.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "serve did not answer within 30s"
                time.sleep(0.1)
        assert response.status_code == 200
        metrics = httpx.get(f"http://127.0.0.1:{port}/api/admin/ai-metrics", headers=AUTH)
        assert metrics.status_code == 200 and metrics.json()["totals"]["calls"] == 0
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_metrics_bench_runs_at_a_small_size(servers, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`python -m bench.metrics_api` still works (its figures at this size mean nothing)."""
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.metrics_api", "--rows", "20000", "--requests", "3",
         "--baseline-runs", "1", "--json", str(out), "--redis-url", servers.redis_url,
         "--postgres-url", servers.admin_url],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = orjson.loads(out.read_bytes())
    assert report["sizes"]["ai_call_logs"]["rows"] >= 20_000
    assert set(report["api_ms"]) >= {"image ai-costs", "ai-metrics, 24 h, bucket=minute"}

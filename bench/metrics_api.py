"""The metrics API on a big table: p95 of /api/admin/ai-metrics next to raw-table aggregation.

    .venv/bin/python -m bench.metrics_api --rows 10000000       # the full run (~20-40 min)
    .venv/bin/python -m bench.metrics_api --rows 200000 --requests 30 --baseline-runs 1

In a throwaway database (dropped at the end unless ``--keep``): ``--rows`` calls spread
evenly over ``--days`` days, generated inside Postgres (``INSERT … SELECT
generate_series``) with the platform's task mix (sampled from ``ailedger/demo/traffic.py``),
lognormal tokens and latencies, confidences, errors and fallbacks; then the rollups are
computed from the raw rows by one statement (``ailedger_rebuild_rollups``: the same SQL
the workers' trigger runs per batch). The API is served by uvicorn on loopback, read
through the read-only role, and asked for 30-day ranges whose edges fall mid-hour, so
day, hour and minute rollups are all read. The baseline computes the same figures with
GROUP BY over the raw rows of the range. Also measured: the trigger's cost per worker
batch on the full table, and the per-job and per-image endpoints.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import psycopg
import uvicorn
from psycopg.conninfo import conninfo_to_dict
from pydantic import SecretStr

from ailedger.api.app import create_app
from ailedger.demo.traffic import PROFILES, generate_jobs
from ailedger.settings import Settings
from bench.env import bench_env, machine_facts, server_args
from worker.store import COLUMNS, write_batch

TOKEN = "bench-token"
#: USD per million tokens (input, output): the catalog's magnitudes; CLIP is self-hosted.
RATES = {
    "claude-3-5-sonnet-20241022": (3.0, 15.0),
    "claude-3-5-haiku-20241022": (0.8, 4.0),
    "meta-llama/Llama-4-Scout-17B-16E-Instruct": (0.18, 0.59),
    "text-embedding-3-small": (0.02, 0.0),
}
CONFIDENCE_MEAN = 0.82
CALLS_PER_JOB = 80


def profile_table(conn: psycopg.Connection[Any]) -> None:
    """bench_profiles: each task's share of the traffic (a cumulative [lo, hi)) and shape."""
    mix = Counter(e["task"] for e in generate_jobs(random.Random(1), 20_000))
    conn.execute(
        """CREATE TABLE bench_profiles (
               lo float8, hi float8, task text, model text, provider text,
               in_med float8, in_sigma float8, out_med float8, out_sigma float8,
               lat_med float8, lat_sigma float8, ms_per_out float8, err float8,
               scored bool, image bool, rate_in float8, rate_out float8)"""
    )
    position = 0.0
    for task, count in sorted(mix.items()):
        p = PROFILES[task]
        share = count / sum(mix.values())
        rate = RATES.get(p.model)
        conn.execute(
            "INSERT INTO bench_profiles VALUES"
            " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                position, position + share, task, p.model, p.provider,
                *p.input_tokens, *p.output_tokens, *p.first_token_ms, p.ms_per_output_token,
                p.error_rate, p.quality is not None, task.startswith(("image", "material_an")),
                None if rate is None else rate[0], None if rate is None else rate[1],
            ),
        )  # fmt: skip
        position += share
    # Rounding must not leave a sliver of [0, 1) without a task.
    conn.execute("UPDATE bench_profiles SET hi = 2 WHERE hi = (SELECT max(hi) FROM bench_profiles)")


GENERATE = """
WITH g AS (
    SELECT i, random() AS u, random() AS e,
           %(start)s::timestamptz + (i + random()) * %(step)s::interval AS ts,
           sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) AS z1,
           sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) AS z2,
           sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) AS z3,
           sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) AS z4
    FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) i
), c AS (
    SELECT g.*, p.*,
           CASE WHEN p.in_med > 0 AND g.e >= p.err
                THEN greatest(1, round(p.in_med * exp(p.in_sigma * g.z1)))::int END AS tin,
           CASE WHEN p.out_med > 0 AND g.e >= p.err
                THEN round(p.out_med * exp(p.out_sigma * g.z2))::int END AS tout,
           CASE WHEN p.scored AND g.e >= p.err
                THEN round(least(1, greatest(0, %(conf)s + 0.12 * g.z3))::numeric, 2) END AS conf
    FROM g JOIN bench_profiles p ON g.u >= p.lo AND g.u < p.hi
)
INSERT INTO ai_call_logs (
    id, timestamp, job_id, task, model, provider, input_tokens, output_tokens, image_id,
    cost, cost_source, latency_ms, confidence_score, confidence_breakdown, action,
    fallback_reason, request_data, response_data, error_message)
SELECT gen_random_uuid(), ts, md5((i / %(per_job)s)::text)::uuid, task, model, provider,
       tin, tout, CASE WHEN image THEN 'img-' || (i / 5) END,
       CASE WHEN rate_in IS NOT NULL
            THEN ((coalesce(tin, 0) * rate_in + coalesce(tout, 0) * rate_out) / 1e6)::numeric
            END,
       CASE WHEN rate_in IS NOT NULL THEN 'catalog' ELSE 'unpriced' END,
       greatest(1, round(lat_med * exp(lat_sigma * z4) + coalesce(tout, 0) * ms_per_out))::int,
       conf,
       CASE WHEN conf IS NOT NULL
            THEN jsonb_build_object('model_confidence', conf, 'completeness', 0.9) END,
       CASE WHEN e < err OR conf < 0.70 THEN 'fallback_to_rules' ELSE 'use_ai_result' END,
       CASE WHEN e < err THEN 'error: RateLimitError: Error code: 429'
            WHEN conf < 0.70 THEN 'confidence ' || conf || ' below threshold 0.70' END,
       CASE WHEN scored THEN jsonb_build_object('prompt_version', left(task, 3) || '-v4',
                                                'page', i %% 40) END,
       CASE WHEN scored AND e >= err THEN '{"category": "flooring", "fields": 12}'::jsonb END,
       CASE WHEN e < err THEN 'RateLimitError: Error code: 429 - rate_limit_error' END
FROM c
"""


def generate(url: str, rows: int, start: datetime, days: int, say: Callable[[str], None]) -> None:
    """Fill ai_call_logs like months of traffic would, indexes built afterwards (faster)."""
    with psycopg.connect(url, autocommit=True) as conn:
        profile_table(conn)
        indexes = [
            r[0]
            for r in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'ai_call_logs'"
                " AND indexname <> 'ai_call_logs_pkey'"
            )
        ]
        # Every rollup (time buckets, jobs) is built afterwards by one statement each.
        conn.execute("ALTER TABLE ai_call_logs DISABLE TRIGGER USER")
        key = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'ai_call_logs'::regclass AND conname = 'ai_call_logs_pkey'"
        ).fetchone()
        conn.execute("ALTER TABLE ai_call_logs DROP CONSTRAINT ai_call_logs_pkey")
        for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'ai_call_logs'"
        ).fetchall():
            conn.execute(f"DROP INDEX {r[0]}")
        step = timedelta(days=days) / rows
        chunk = 500_000
        began = time.perf_counter()
        for lo in range(0, rows, chunk):
            conn.execute(
                GENERATE,
                {
                    "start": start, "step": step, "lo": lo, "hi": min(rows, lo + chunk),
                    "conf": CONFIDENCE_MEAN, "per_job": CALLS_PER_JOB,
                },
            )  # fmt: skip
            done = min(rows, lo + chunk)
            say(f"  {done:,} rows ({done / (time.perf_counter() - began):,.0f}/s)")
        say("  building the primary key and indexes")
        # (id, timestamp) since sql/012: whatever the key is, it comes back as it was.
        conn.execute(f"ALTER TABLE ai_call_logs ADD CONSTRAINT ai_call_logs_pkey {key[0]}")
        for definition in indexes:
            conn.execute(definition)
        conn.execute("ALTER TABLE ai_call_logs ENABLE TRIGGER USER")
        conn.execute("DROP TABLE bench_profiles")
        conn.execute("VACUUM ANALYZE ai_call_logs")


def build_rollups(url: str) -> float:
    """The rollups of every row, by one INSERT … SELECT GROUP BY; returns seconds."""
    with psycopg.connect(url, autocommit=True) as conn:
        began = time.perf_counter()
        conn.execute("SELECT ailedger_rebuild_rollups('-infinity', 'infinity')")
        conn.execute("SELECT ailedger_rebuild_job_rollups()")
        seconds = time.perf_counter() - began
        conn.execute("VACUUM ANALYZE ai_job_rollups")
        conn.execute("VACUUM ANALYZE ai_call_rollups")
        conn.execute("VACUUM ANALYZE ai_call_fallback_rollups")
    return seconds


def trigger_cost(url: str, batches: int = 20) -> dict[str, float]:
    """Median ms of a 500-row worker batch (write_batch) on the full table, trigger on and off.

    The rows are copies of the newest ones under new ids: like a worker's, they land in
    the current minute, whose rollup rows already exist and are updated.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        newest = conn.execute(
            f"SELECT {', '.join(COLUMNS)} FROM ai_call_logs ORDER BY timestamp DESC LIMIT 500"
        ).fetchall()
        medians: dict[str, list[float]] = {"ENABLE": [], "DISABLE": []}
        for mode in ("ENABLE", "DISABLE", "ENABLE", "DISABLE"):
            conn.execute(f"ALTER TABLE ai_call_logs {mode} TRIGGER ailedger_rollup_insert")
            for _ in range(batches):
                rows = [(str(uuid.uuid4()), *(_json(v) for v in row[1:])) for row in newest]
                began = time.perf_counter()
                write_batch(conn, rows, stream="bench")
                medians[mode].append((time.perf_counter() - began) * 1000)
        conn.execute("ALTER TABLE ai_call_logs ENABLE TRIGGER ailedger_rollup_insert")
    return {
        "with_trigger_ms": round(statistics.median(medians["ENABLE"]), 1),
        "without_trigger_ms": round(statistics.median(medians["DISABLE"]), 1),
    }


def _json(value: Any) -> Any:
    return orjson.dumps(value).decode() if isinstance(value, dict | list) else value


BASELINE = [
    """SELECT task, model, count(*), sum(input_tokens), sum(output_tokens), sum(cost),
              count(*) FILTER (WHERE cost IS NULL),
              count(*) FILTER (WHERE error_message IS NOT NULL),
              count(*) FILTER (WHERE action = 'fallback_to_rules'), avg(latency_ms),
              percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms),
              avg(confidence_score)
       FROM ai_call_logs WHERE timestamp >= %(lo)s AND timestamp < %(hi)s GROUP BY 1, 2""",
    """SELECT date_trunc('day', timestamp, 'UTC'), model, count(*), sum(cost)
       FROM ai_call_logs WHERE timestamp >= %(lo)s AND timestamp < %(hi)s GROUP BY 1, 2""",
    """SELECT fallback_reason, count(*) FROM ai_call_logs
       WHERE timestamp >= %(lo)s AND timestamp < %(hi)s AND action = 'fallback_to_rules'
       GROUP BY 1 ORDER BY 2 DESC LIMIT 10""",
    """SELECT least(floor(confidence_score * 20), 19), count(*) FROM ai_call_logs
       WHERE timestamp >= %(lo)s AND timestamp < %(hi)s AND confidence_score IS NOT NULL
       GROUP BY 1""",
]


def percentiles(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"n": len(ms), "p50": at(0.5), "p95": at(0.95), "p99": at(0.99), "max": at(1.0)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure_api(
    settings: Settings,
    end: datetime,
    days: int,
    requests: int,
    job_ids: list[str],
    images: list[str],
) -> dict[str, dict[str, float]]:
    """p50/p95/p99 (ms, client side, over HTTP) of each kind of request, after a warm-up."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="bench-api", daemon=True)
    thread.start()
    rng = random.Random(3)
    results: dict[str, dict[str, float]] = {}
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as client:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.05)

        def window(span: timedelta) -> dict[str, str]:
            # Edges mid-hour and mid-minute: day, hour and minute rollups are all read.
            hi = end - timedelta(seconds=rng.uniform(0, 6 * 3600))
            return {"from": (hi - span).isoformat(), "to": hi.isoformat()}

        month = timedelta(days=days)
        kinds: dict[str, Callable[[], tuple[str, dict[str, str]]]] = {
            f"ai-metrics, {days} days (day buckets)": lambda: (
                "/api/admin/ai-metrics", window(month)
            ),
            f"ai-metrics, {days} days, bucket=hour": lambda: (
                "/api/admin/ai-metrics", {**window(month), "bucket": "hour"}
            ),
            f"ai-metrics, {days} days, task=image_vision_analysis": lambda: (
                "/api/admin/ai-metrics", {**window(month), "task": "image_vision_analysis"}
            ),
            "ai-metrics, 24 h, bucket=minute": lambda: (
                "/api/admin/ai-metrics", {**window(timedelta(days=1)), "bucket": "minute"}
            ),
            f"job ai-costs ({CALLS_PER_JOB} calls)": lambda: (
                f"/api/admin/jobs/{rng.choice(job_ids)}/ai-costs", {}
            ),
            "image ai-costs": lambda: (f"/api/admin/images/{rng.choice(images)}/ai-costs", {}),
        }  # fmt: skip
        for name, make in kinds.items():
            timings = []
            for n in range(requests + 10):
                path, params = make()
                began = time.perf_counter()
                response = client.get(path, params=params)
                elapsed = (time.perf_counter() - began) * 1000
                assert response.status_code == 200, response.text[:500]
                if n >= 10:  # the first ten warm the pool and the caches
                    timings.append(elapsed)
            results[name] = percentiles(timings)
    server.should_exit = True
    thread.join(10)
    return results


def measure_baseline(url: str, end: datetime, days: int, runs: int) -> dict[str, float]:
    """The same figures by GROUP BY over the raw rows of the range (ms per request)."""
    timings = []
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(runs):
            hi = end - timedelta(minutes=random.randint(0, 360))
            began = time.perf_counter()
            for query in BASELINE:
                conn.execute(query, {"lo": hi - timedelta(days=days), "hi": hi}).fetchall()
            timings.append((time.perf_counter() - began) * 1000)
    return percentiles(timings)


def sizes(url: str) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        out: dict[str, Any] = {}
        for table in ("ai_call_logs", "ai_call_rollups", "ai_call_fallback_rollups"):
            row = conn.execute(
                "SELECT pg_total_relation_size(%s::regclass), (SELECT reltuples::bigint"
                " FROM pg_class WHERE oid = %s::regclass)",
                (table, table),
            ).fetchone()
            out[table] = {"bytes": row[0], "rows": row[1]}  # type: ignore[index]
        out["rollup_rows_by_grain"] = dict(
            conn.execute("SELECT grain, count(*) FROM ai_call_rollups GROUP BY 1").fetchall()
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_api", description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per kind")
    parser.add_argument("--baseline-runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the database for a look")
    parser.add_argument(
        "--database", help="measure a database kept by an earlier run (--keep) instead"
    )
    parser.add_argument("--json", help="write every figure here")
    server_args(parser)
    args = parser.parse_args(argv)

    def say(line: str) -> None:
        print(line, flush=True)

    os.environ["AILEDGER_LOG_LEVEL"] = "WARNING"
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(days=args.days)
    with bench_env(args.redis_url, args.postgres_url) as env:
        report: dict[str, Any] = {"machine": machine_facts(env), "rows": args.rows}
        if args.database:
            url = args.database
            with psycopg.connect(url) as conn:
                newest = conn.execute("SELECT max(timestamp) FROM ai_call_logs").fetchone()
            end = newest[0].replace(second=0, microsecond=0) + timedelta(minutes=1)  # type: ignore[index]
        else:
            url = env.fresh_database()
            say(f"generating {args.rows:,} rows over {args.days} days")
            began = time.perf_counter()
            generate(url, args.rows, start, args.days, say)
            report["generate_s"] = round(time.perf_counter() - began, 1)
            say("computing the rollups from the raw rows (one statement)")
            report["rollup_build_s"] = round(build_rollups(url), 1)
        report["sizes"] = sizes(url)
        say("worker batches on the full table, rollup trigger on and off")
        report["write_batch_500"] = trigger_cost(url)
        with psycopg.connect(url) as conn:
            jobs = [
                str(r[0])
                for r in conn.execute(
                    # Ids are md5 hashes: the first 200 in index order are as good as random.
                    "SELECT DISTINCT job_id FROM ai_call_logs WHERE job_id IS NOT NULL"
                    " ORDER BY 1 LIMIT 200"
                )
            ]
            images = [r[0] for r in conn.execute(
                "SELECT DISTINCT image_id FROM ai_call_logs WHERE image_id IS NOT NULL"
                " ORDER BY 1 LIMIT 200")]  # fmt: skip
        settings = Settings(
            database_url=url,
            redis_url=args.redis_url,
            stream=env.key("events"),
            api_token=SecretStr(TOKEN),
        )
        say(f"API: {args.requests} timed requests per kind")
        report["api_ms"] = measure_api(settings, end, args.days, args.requests, jobs, images)
        say(f"baseline: raw-table aggregation, {args.baseline_runs} run(s)")
        report["raw_baseline_ms"] = measure_baseline(url, end, args.days, args.baseline_runs)
        if args.keep:
            env._databases.remove(conninfo_to_dict(url)["dbname"])
            say(f"kept {url}")
    say(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    if args.json:
        with open(args.json, "wb") as f:
            f.write(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

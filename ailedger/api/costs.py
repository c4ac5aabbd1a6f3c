"""What one job or one image cost: its raw rows, read through their indexes.

A job has hundreds to a few thousand calls and an image a handful, so these read
``ai_call_logs`` directly (by ``job_id`` and ``image_id``), each answer in one snapshot.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from ailedger.api import models as m
from ailedger.api.figures import group_cost, total_tokens_sql
from producer.jobs import job_uuid


def job_costs(
    conn: psycopg.Connection[Any], job: str, *, offset: int = 0, limit: int = 1_000
) -> m.JobCosts:
    """The job's calls ``offset`` … ``offset + limit`` in order, running totals from the first.

    ``job`` is the job's UUID or its key as the service gave it (``42``, ``upload-42``).
    """
    job_id, job_key = job_uuid(job)
    with conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        totals = cur.execute(_TOTALS_SQL + " WHERE job_id = %s", (job_id,)).fetchone()
        calls = cur.execute(_JOB_CALLS_SQL, (job_id, offset, limit + 1)).fetchall()
    return m.JobCosts(
        job_id=job_id,
        job_key=job_key,
        totals=_totals(totals),
        calls=[m.JobCall(**row) for row in calls[:limit]],
        offset=offset,
        has_more=len(calls) > limit,
    )


def image_costs(conn: psycopg.Connection[Any], image_id: str) -> m.ImageCosts:
    """The image's cost per task (its processing steps) and in total."""
    with conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        total = cur.execute(_TOTALS_SQL + " WHERE image_id = %s", (image_id,)).fetchone()
        steps = cur.execute(_IMAGE_STEPS_SQL, (image_id,)).fetchall()
        jobs = conn.execute(
            "SELECT DISTINCT job_id FROM ai_call_logs"
            " WHERE image_id = %s AND job_id IS NOT NULL ORDER BY 1",
            (image_id,),
        ).fetchall()
    return m.ImageCosts(
        image_id=image_id,
        steps=[m.ImageStep(**_priced(row)) for row in steps],
        total=_totals(total),
        job_ids=[row[0] for row in jobs],
    )


def _priced(row: dict[str, Any]) -> dict[str, Any]:
    row["cost"] = group_cost(row["cost"], row["calls"], row["unpriced_calls"])
    return row


def _totals(row: dict[str, Any] | None) -> m.CostTotals:
    assert row is not None  # an aggregate without GROUP BY always answers one row
    return m.CostTotals(**_priced(row))


_TOTALS_COLUMNS = f"""
       count(*) AS calls,
       coalesce(sum(input_tokens), 0) AS input_tokens,
       coalesce(sum(output_tokens), 0) AS output_tokens,
       coalesce(sum(cache_read_tokens), 0) AS cache_read_tokens,
       coalesce(sum(cache_write_tokens), 0) AS cache_write_tokens,
       coalesce(sum(cache_write_1h_tokens), 0) AS cache_write_1h_tokens,
       coalesce(sum({total_tokens_sql()}), 0) AS tokens,
       sum(cost) AS cost,
       count(*) FILTER (WHERE cost IS NULL) AS unpriced_calls,
       count(*) FILTER (WHERE cost_source = 'no_usage') AS no_usage_calls,
       count(*) FILTER (WHERE error_message IS NOT NULL) AS errors,
       count(*) FILTER (WHERE action = 'fallback_to_rules') AS fallbacks,
       coalesce(sum(latency_ms), 0) AS latency_ms,
       min(timestamp) AS first_call_at,
       max(timestamp) AS last_call_at"""
_TOTALS_SQL = f"SELECT {_TOTALS_COLUMNS} FROM ai_call_logs"
_IMAGE_STEPS_SQL = f"""
SELECT task, array_agg(DISTINCT model ORDER BY model) AS models, {_TOTALS_COLUMNS}
FROM ai_call_logs WHERE image_id = %s GROUP BY task ORDER BY min(timestamp), task"""
# running_cost: sum() over the calls so far is NULL exactly while none of them is priced,
# which is group_cost's rule for a group with calls.
_JOB_CALLS_SQL = f"""
SELECT * FROM (
    SELECT id, timestamp, task, model, provider, input_tokens, output_tokens,
           cache_read_tokens, cache_write_tokens, cache_write_1h_tokens, image_id, cost,
           cost_source, latency_ms, confidence_score, action, fallback_reason, error_message,
           row_number() OVER w AS running_calls,
           sum({total_tokens_sql()}) OVER w AS running_tokens,
           sum(cost) OVER w AS running_cost
    FROM ai_call_logs WHERE job_id = %s
    WINDOW w AS (ORDER BY timestamp, id ROWS UNBOUNDED PRECEDING)
) calls ORDER BY running_calls OFFSET %s LIMIT %s"""

"""What one job or one image cost: its raw rows, read through their indexes.

A job has hundreds to a few thousand calls and an image a handful, so these read
``ai_call_logs`` directly (by ``job_id`` and ``image_id``), each answer in one snapshot.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from ailedger.api import models as m


def job_costs(
    conn: psycopg.Connection[Any], job_id: UUID, *, offset: int = 0, limit: int = 1_000
) -> m.JobCosts:
    """The job's calls ``offset`` … ``offset + limit`` in order, running totals from the first."""
    with conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        totals = cur.execute(_TOTALS_SQL + " WHERE job_id = %s", (job_id,)).fetchone()
        calls = cur.execute(_JOB_CALLS_SQL, (job_id, offset, limit + 1)).fetchall()
    return m.JobCosts(
        job_id=job_id,
        totals=m.CostTotals(**(totals or {})),
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
        steps=[m.ImageStep(**row) for row in steps],
        total=m.CostTotals(**(total or {})),
        job_ids=[row[0] for row in jobs],
    )


_TOTALS_COLUMNS = """
       count(*) AS calls,
       coalesce(sum(input_tokens), 0) AS input_tokens,
       coalesce(sum(output_tokens), 0) AS output_tokens,
       coalesce(sum(cache_read_tokens), 0) AS cache_read_tokens,
       coalesce(sum(cache_write_tokens), 0) AS cache_write_tokens,
       coalesce(sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0)), 0) AS tokens,
       coalesce(sum(cost), 0) AS cost,
       count(*) FILTER (WHERE cost IS NULL) AS unpriced_calls,
       count(*) FILTER (WHERE error_message IS NOT NULL) AS errors,
       count(*) FILTER (WHERE action = 'fallback_to_rules') AS fallbacks,
       coalesce(sum(latency_ms), 0) AS latency_ms,
       min(timestamp) AS first_call_at,
       max(timestamp) AS last_call_at"""
_TOTALS_SQL = f"SELECT {_TOTALS_COLUMNS} FROM ai_call_logs"
_IMAGE_STEPS_SQL = f"""
SELECT task, array_agg(DISTINCT model ORDER BY model) AS models, {_TOTALS_COLUMNS}
FROM ai_call_logs WHERE image_id = %s GROUP BY task ORDER BY min(timestamp), task"""
_JOB_CALLS_SQL = """
SELECT * FROM (
    SELECT id, timestamp, task, model, provider, input_tokens, output_tokens,
           cache_read_tokens, cache_write_tokens, image_id, cost, cost_source, latency_ms,
           confidence_score, action, fallback_reason, error_message,
           row_number() OVER w AS running_calls,
           sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0)) OVER w AS running_tokens,
           coalesce(sum(cost) OVER w, 0) AS running_cost
    FROM ai_call_logs WHERE job_id = %s
    WINDOW w AS (ORDER BY timestamp, id ROWS UNBOUNDED PRECEDING)
) calls ORDER BY running_calls OFFSET %s LIMIT %s"""

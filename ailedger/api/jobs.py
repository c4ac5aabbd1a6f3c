"""Recent processing jobs (PDF uploads): what each cost, newest or dearest first.

Read from the raw rows of the range through the timestamp index, grouped by job.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, Request
from psycopg.rows import dict_row

from ailedger.api import dashboard_models as dm

#: Sort keys of the job list and the column each orders by (descending).
SORTS = {
    "recent": "last_call_at",
    "cost": "cost",
    "calls": "calls",
    "duration": "duration_ms",
    "fallbacks": "fallbacks",
    "errors": "errors",
}

router = APIRouter(tags=["dashboard"])


@router.get("/api/admin/jobs", response_model=dm.JobList)
def recent_jobs(
    request: Request,
    start: Annotated[datetime | None, Query(alias="from", description="Default: 24 h ago.")] = None,
    end: Annotated[datetime | None, Query(alias="to", description="Default: now.")] = None,
    sort: Annotated[str, Query(pattern=f"^({'|'.join(SORTS)})$")] = "recent",
    q: Annotated[
        str | None, Query(max_length=36, description="A job id, or the beginning of one.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
) -> dm.JobList:
    """Jobs with calls in the range: calls, tokens, cost, duration, fallbacks, errors."""
    from ailedger.api.app import _range  # the API's one reading of from/to

    lo, hi, _ = _range(start, end, None)
    clause = "timestamp >= %s AND timestamp < %s AND job_id IS NOT NULL"
    params: list[Any] = [lo, hi]
    if q:
        needle = q.strip().lower()
        if any(c not in "0123456789abcdef-" for c in needle):
            raise HTTPException(422, f"{q!r} is not a job id: use hex digits and dashes")
        try:
            clause, params = "job_id = %s", [UUID(needle)]  # a whole id: any time
        except ValueError:
            clause += " AND job_id::text LIKE %s"
            params.append(needle + "%")
    query = f"""
        SELECT job_id, count(*) AS calls,
               coalesce(sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0)
                            + coalesce(cache_read_tokens, 0) + coalesce(cache_write_tokens, 0)),
                        0) AS tokens,
               coalesce(sum(cost), 0) AS cost,
               count(*) FILTER (WHERE cost IS NULL) AS unpriced_calls,
               count(*) FILTER (WHERE action = 'fallback_to_rules') AS fallbacks,
               count(*) FILTER (WHERE error_message IS NOT NULL) AS errors,
               min(timestamp) AS first_call_at, max(timestamp) AS last_call_at,
               round(extract(epoch FROM max(timestamp + make_interval(
                   secs => coalesce(latency_ms, 0) / 1000.0)) - min(timestamp)) * 1000)::bigint
                   AS duration_ms
        FROM ai_call_logs WHERE {clause}
        GROUP BY job_id ORDER BY {SORTS[sort]} DESC, job_id LIMIT %s"""
    backends: Any = request.app.state.backends
    with backends.pool().connection() as conn:
        rows = conn.cursor(row_factory=dict_row).execute(query, [*params, limit + 1]).fetchall()
    return dm.JobList(
        jobs=[dm.JobSummary(**row) for row in rows[:limit]],
        sort=sort,
        has_more=len(rows) > limit,
    )


@router.get("/api/admin/jobs-summary", response_model=dm.JobsSummary)
def jobs_summary(
    request: Request,
    start: Annotated[datetime | None, Query(alias="from", description="Default: 24 h ago.")] = None,
    end: Annotated[datetime | None, Query(alias="to", description="Default: now.")] = None,
    task: Annotated[list[str] | None, Query(description="Only these tasks.")] = None,
    model: Annotated[list[str] | None, Query(description="Only these models.")] = None,
) -> dm.JobsSummary:
    """How many jobs the range holds and what their calls cost on average."""
    from ailedger.api.app import _range

    lo, hi, _ = _range(start, end, None)
    clause = "timestamp >= %s AND timestamp < %s AND job_id IS NOT NULL"
    params: list[Any] = [lo, hi]
    if task:
        clause += " AND task = ANY(%s)"
        params.append(task)
    if model:
        clause += " AND model = ANY(%s)"
        params.append(model)
    query = f"""SELECT count(DISTINCT job_id), coalesce(sum(cost), 0),
                       count(*) FILTER (WHERE cost IS NULL)
                FROM ai_call_logs WHERE {clause}"""
    backends: Any = request.app.state.backends
    with backends.pool().connection() as conn:
        row = conn.execute(query, params).fetchone()
    jobs, cost, unpriced = row if row else (0, Decimal(0), 0)
    return dm.JobsSummary(
        jobs=jobs,
        cost=cost,
        unpriced_calls=unpriced,
        average_cost=(cost / jobs).quantize(Decimal("1e-12")) if jobs else None,
    )

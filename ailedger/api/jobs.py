"""Recent processing jobs (PDF uploads): what each cost, newest or dearest first.

Read from the per-job rollups (sql/013_job_rollups.sql), never the raw rows: a range's
jobs are those with a call in it, each with its whole figures, so the answer costs the
same at ten thousand rows and at ten million.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, Request
from psycopg.rows import dict_row

from ailedger.api import dashboard_models as dm
from ailedger.api.paths import Moment

#: Sort keys of the job list and the column each orders by (descending).
SORTS = {
    "recent": "last_call_at",
    "cost": "cost",
    "calls": "calls",
    "duration": "duration_ms",
    "fallbacks": "fallbacks",
    "errors": "errors",
}

#: A job's (task, model) rows with a call in [from, to): it started before `to` and its
#: last call was at or after `from`.
_IN_RANGE = "first_call_at < %s AND last_call_at >= %s"

router = APIRouter(tags=["dashboard"])


@router.get("/api/admin/jobs", response_model=dm.JobList)
def recent_jobs(
    request: Request,
    start: Annotated[Moment | None, Query(alias="from", description="Default: 24 h ago.")] = None,
    end: Annotated[Moment | None, Query(alias="to", description="Default: now.")] = None,
    sort: Annotated[str, Query(pattern=f"^({'|'.join(SORTS)})$")] = "recent",
    q: Annotated[
        str | None, Query(max_length=36, description="A job id, or the beginning of one.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
) -> dm.JobList:
    """Jobs with calls in the range: calls, tokens, cost, duration, fallbacks, errors."""
    from ailedger.api.app import _range  # the API's one reading of from/to

    lo, hi, _ = _range(start, end, None)
    clause = _IN_RANGE
    params: list[Any] = [hi, lo]
    if q:
        needle = q.strip().lower()
        if any(c not in "0123456789abcdef-" for c in needle):
            # FastAPI's own 422 shape, as the OpenAPI document says.
            raise HTTPException(
                422,
                [
                    {
                        "loc": ["query", "q"],
                        "msg": f"{q!r} is not a job id: use hex digits and dashes",
                        "type": "value_error",
                    }
                ],
            )
        try:
            clause, params = "job_id = %s", [UUID(needle)]  # a whole id: any time
        except ValueError:
            clause += " AND job_id::text LIKE %s"
            params.append(needle + "%")
    query = f"""
        SELECT job_id, sum(calls)::bigint AS calls, sum(tokens)::bigint AS tokens,
               sum(cost) AS cost, sum(unpriced)::bigint AS unpriced_calls,
               sum(fallbacks)::bigint AS fallbacks, sum(errors)::bigint AS errors,
               min(first_call_at) AS first_call_at, max(last_call_at) AS last_call_at,
               round(extract(epoch FROM max(last_end_at) - min(first_call_at)) * 1000)::bigint
                   AS duration_ms
        FROM ai_job_rollups
        -- An array, not a join: the planner then reads each job by its key, where a join
        -- misjudged the few thousand jobs of a day and scanned the whole table.
        WHERE job_id = ANY(ARRAY(SELECT DISTINCT job_id FROM ai_job_rollups WHERE {clause}))
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
    start: Annotated[Moment | None, Query(alias="from", description="Default: 24 h ago.")] = None,
    end: Annotated[Moment | None, Query(alias="to", description="Default: now.")] = None,
    task: Annotated[list[str] | None, Query(description="Only these tasks.")] = None,
    model: Annotated[list[str] | None, Query(description="Only these models.")] = None,
) -> dm.JobsSummary:
    """How many jobs the range holds and what their calls cost on average."""
    from ailedger.api.app import _range

    lo, hi, _ = _range(start, end, None)
    clause = _IN_RANGE
    params: list[Any] = [hi, lo]
    if task:
        clause += " AND task = ANY(%s)"
        params.append(task)
    if model:
        clause += " AND model = ANY(%s)"
        params.append(model)
    query = f"""SELECT count(DISTINCT job_id), coalesce(sum(cost), 0),
                       coalesce(sum(unpriced), 0)::bigint
                FROM ai_job_rollups WHERE {clause}"""
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

"""Confidence per task, bin by bin, with calls and cost: the threshold what-if's data.

The rollups keep, per (minute/hour/day, task, model, provider), the calls of each
0.05-wide confidence bin and the cost of all the row's calls together, not per bin.
A bin's cost is estimated by sharing each row's cost among its calls; rows are a
minute of one task and model at the finest, so calls sharing a row cost alike.
Moving a threshold then needs no further request: calls below it fall back.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from ailedger.api import dashboard_models as dm
from ailedger.api import rollups
from ailedger.api.paths import Moment

COST_NOTE = (
    "bin costs are estimates: each rollup row's cost shared equally among its calls; "
    "task totals are exact"
)

router = APIRouter(tags=["dashboard"])


@router.get("/api/admin/confidence", response_model=dm.ConfidenceReport)
def confidence_by_task(
    request: Request,
    start: Annotated[Moment | None, Query(alias="from", description="Default: 24 h ago.")] = None,
    end: Annotated[Moment | None, Query(alias="to", description="Default: now.")] = None,
    task: Annotated[list[str] | None, Query(description="Only these tasks.")] = None,
    model: Annotated[list[str] | None, Query(description="Only these models.")] = None,
) -> dm.ConfidenceReport:
    """Each task's confidence histogram with calls and estimated cost per bin, and threshold."""
    from ailedger.api.app import _range  # the API's one reading of from/to

    lo, hi, _ = _range(start, end, None)
    where, params = rollups._where(rollups.cover(lo, hi), task, model)
    totals_sql = f"""
        SELECT r.task, sum(r.calls)::bigint, sum(r.confidence_count)::bigint, sum(r.cost),
               sum(r.fallbacks)::bigint, sum(r.errors)::bigint
        FROM ai_call_rollups r WHERE {where} GROUP BY 1 ORDER BY 1"""
    bins_sql = f"""
        SELECT r.task, b.i::int, sum(b.n)::bigint,
               sum(CASE WHEN r.calls > 0 THEN r.cost * b.n / r.calls ELSE 0 END)
        FROM ai_call_rollups r, unnest(r.confidence_hist) WITH ORDINALITY AS b (n, i)
        WHERE {where} AND b.n <> 0 GROUP BY 1, 2"""
    backends: Any = request.app.state.backends
    with backends.pool().connection() as conn, conn.transaction():
        totals = conn.execute(totals_sql, params).fetchall()
        per_bin = conn.execute(bins_sql, params).fetchall()
    bins: dict[str, dict[int, tuple[int, Decimal]]] = defaultdict(dict)
    for name, index, calls, cost in per_bin:
        bins[name][index] = (int(calls), Decimal(cost).quantize(Decimal("1e-12")))
    edges = rollups.confidence_bins()
    settings = backends.settings
    return dm.ConfidenceReport(
        start=lo,
        end=hi,
        tasks=[
            dm.TaskConfidence(
                task=name,
                threshold=settings.threshold_for(name),
                calls=calls,
                scored_calls=scored,
                cost=cost,
                fallbacks=fallbacks,
                errors=errors,
                bins=[
                    dm.ConfidenceBin(
                        low=low,
                        high=high,
                        calls=bins[name].get(i + 1, (0, Decimal(0)))[0],
                        cost=bins[name].get(i + 1, (0, Decimal(0)))[1],
                    )
                    for i, (low, high) in enumerate(edges)
                ],
            )
            for name, calls, scored, cost, fallbacks, errors in totals
            if calls
        ],
        cost_note=COST_NOTE,
    )

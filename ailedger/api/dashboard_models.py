"""The shapes of the dashboard's own reads (recent jobs, confidence per task).

Costs are USD as exact decimals (JSON strings), never floats, as in
:mod:`ailedger.api.models`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from pydantic import BaseModel, Field


class JobSummary(BaseModel):
    job_id: UUID
    calls: int
    tokens: int
    cost: Decimal = Field(description="USD, exact sum over the priced calls.")
    unpriced_calls: int
    fallbacks: int
    errors: int
    first_call_at: datetime
    last_call_at: datetime
    duration_ms: int = Field(description="From the first call's start to the last call's end.")


class JobList(BaseModel):
    jobs: list[JobSummary]
    sort: str
    has_more: bool


class ConfidenceBin(BaseModel):
    low: Decimal
    high: Decimal = Field(description="Exclusive, except for the last bin (1.00).")
    calls: int
    cost: Decimal = Field(
        description="Estimated: each rollup row's cost shared among its calls by bin."
    )


class TaskConfidence(BaseModel):
    task: str
    threshold: Decimal = Field(description="The task's configured fallback threshold.")
    calls: int
    scored_calls: int
    cost: Decimal
    fallbacks: int
    errors: int
    bins: list[ConfidenceBin]


class ConfidenceReport(BaseModel):
    start: datetime
    end: datetime
    tasks: list[TaskConfidence]
    cost_note: str


class JobsSummary(BaseModel):
    jobs: int = Field(description="Distinct jobs with calls in the range (and filters).")
    cost: Decimal = Field(description="USD, exact sum of those jobs' priced calls (and filters).")
    unpriced_calls: int
    average_cost: Decimal | None = Field(description="cost / jobs; None without jobs.")

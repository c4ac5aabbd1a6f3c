"""The shapes of the metrics API's answers (they are also its OpenAPI documentation).

Costs are USD as exact decimals (JSON strings), never floats; rates are fractions.
A cost is null (unknown, never $0) when its group has calls and none of them is priced;
``unpriced_calls`` says how many calls a cost leaves out. ``tokens`` is always
``input_tokens + output_tokens`` (input includes cache reads and writes): the provider's total.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

PERCENTILE_NOTE = (
    "latency percentiles are histogram bucket upper bounds (capped at the maximum): "
    "never below the true value, at most 25% above it"
)


class LatencyStats(BaseModel):
    mean: float | None = Field(description="Mean latency (ms), exact.")
    p50: int | None = Field(description="Median (ms): bucket upper bound, at most 25% high.")
    p95: int | None
    p99: int | None
    max: int | None


TOKENS = (
    "input_tokens + output_tokens: the total the provider reports and bills "
    "(input_tokens already includes cache reads and writes)"
)
COST = (
    "USD, exact sum over the priced calls; null when there are calls and none is priced "
    "(unpriced_calls says how many a sum leaves out)"
)
UNPRICED = "Calls of models without a known price: cost unknown, left out of the sum."
NO_USAGE = (
    "Failed calls that reported no usage: nothing was billed, counted at $0 "
    "(cost_source no_usage), not unpriced."
)
CACHE_WRITE_1H = "The part of cache_write_tokens written to a 1-hour cache (priced higher)."


class UsageFigures(BaseModel):
    """What every group of calls is counted by: calls, tokens, cost, errors."""

    calls: int
    input_tokens: int = Field(description="All input, cache reads and writes included.")
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cache_write_1h_tokens: int = Field(description=CACHE_WRITE_1H)
    tokens: int = Field(description=TOKENS)
    cost: Decimal | None = Field(description=COST)
    unpriced_calls: int = Field(description=UNPRICED)
    no_usage_calls: int = Field(description=NO_USAGE)
    errors: int


class CallStats(UsageFigures):
    error_rate: float | None
    fallbacks: int
    fallback_rate: float | None
    latency_ms: LatencyStats
    confidence_mean: float | None
    scored_calls: int = Field(description="Calls with a confidence score.")


class ModelStats(CallStats):
    model: str
    providers: list[str]


class TaskStats(CallStats):
    task: str


class ModelPoint(BaseModel):
    calls: int
    tokens: int = Field(description=TOKENS)
    cost: Decimal | None = Field(description=COST)
    unpriced_calls: int = Field(description=UNPRICED)


class TimelinePoint(BaseModel):
    start: datetime
    calls: int
    tokens: int = Field(description=TOKENS)
    cost: Decimal | None = Field(description=COST)
    unpriced_calls: int = Field(description=UNPRICED)
    by_model: dict[str, ModelPoint]


class HistogramBin(BaseModel):
    low: Decimal
    high: Decimal = Field(description="Exclusive, except for the last bin (1.00).")
    calls: int


class FallbackReason(BaseModel):
    reason: str
    calls: int


class QueueDepth(BaseModel):
    length: int
    lag: int = Field(description="Entries never delivered to a worker.")
    pending: int = Field(description="Entries delivered and not yet acknowledged.")
    oldest_pending_age_s: float | None
    dead_letter: int
    workers_alive: int
    ok: bool
    verdict: str


class MetricsRange(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    start: datetime = Field(alias="from", description="Inclusive, rounded down to the minute.")
    end: datetime = Field(alias="to", description="Exclusive, rounded up to the minute.")
    bucket: str
    tasks: list[str] | None
    models: list[str] | None


class AIMetrics(BaseModel):
    range: MetricsRange
    totals: CallStats
    timeline: list[TimelinePoint]
    by_model: list[ModelStats]
    by_task: list[TaskStats]
    confidence_histogram: list[HistogramBin]
    top_fallback_reasons: list[FallbackReason]
    queue: QueueDepth | None
    queue_error: str | None = None
    percentile_note: str = PERCENTILE_NOTE


class JobCall(BaseModel):
    id: UUID
    timestamp: datetime
    task: str
    model: str
    provider: str | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    cache_write_1h_tokens: int | None = Field(description=CACHE_WRITE_1H)
    image_id: str | None
    cost: Decimal | None = Field(description="USD; null when the call is unpriced.")
    cost_source: str = Field(
        description="catalog, override, reported, unpriced (no price: cost null) or no_usage "
        "(a failed call that reported no usage: $0)"
    )
    latency_ms: int | None
    confidence_score: Decimal | None
    action: str | None
    fallback_reason: str | None
    error_message: str | None
    running_calls: int
    running_tokens: int = Field(description=TOKENS)
    running_cost: Decimal | None = Field(
        description="USD over the calls so far; null while none of them is priced."
    )


class CostTotals(UsageFigures):
    fallbacks: int
    latency_ms: int = Field(description="Sum of the calls' latencies.")
    first_call_at: datetime | None
    last_call_at: datetime | None


class JobCosts(BaseModel):
    job_id: UUID = Field(description="The job's UUID (derived from its key when it has one).")
    job_key: str | None = Field(
        description="The key the job was asked for by, when it is not a UUID (42, upload-42)."
    )
    totals: CostTotals
    calls: list[JobCall] = Field(description="In order; running totals count from the first.")
    offset: int
    has_more: bool


class ImageStep(CostTotals):
    task: str
    models: list[str]


class ImageCosts(BaseModel):
    image_id: str
    steps: list[ImageStep]
    total: CostTotals
    job_ids: list[UUID]


class ErrorMessage(BaseModel):
    """An error the API explains in one sentence (401, 503)."""

    detail: str

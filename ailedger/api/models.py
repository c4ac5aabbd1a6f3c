"""The shapes of the metrics API's answers (they are also its OpenAPI documentation).

Costs are USD as exact decimals (JSON strings), never floats; rates are fractions.
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


class CallStats(BaseModel):
    calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    tokens: int = Field(
        description="Input plus output tokens, what providers bill and report; input"
        " already includes the cache reads and writes."
    )
    cost: Decimal = Field(description="USD, exact sum over the priced calls.")
    unpriced_calls: int = Field(description="Calls of models without a known price (no cost).")
    errors: int
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
    tokens: int
    cost: Decimal


class TimelinePoint(BaseModel):
    start: datetime
    calls: int
    tokens: int
    cost: Decimal
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
    image_id: str | None
    cost: Decimal | None
    cost_source: str
    latency_ms: int | None
    confidence_score: Decimal | None
    action: str | None
    fallback_reason: str | None
    error_message: str | None
    running_calls: int
    running_tokens: int
    running_cost: Decimal


class CostTotals(BaseModel):
    calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    tokens: int
    cost: Decimal
    unpriced_calls: int
    errors: int
    fallbacks: int
    latency_ms: int = Field(description="Sum of the calls' latencies.")
    first_call_at: datetime | None
    last_call_at: datetime | None


class JobCosts(BaseModel):
    job_id: UUID
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

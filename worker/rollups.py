"""The rollups of the rows a batch inserted, added by the worker in the same transaction.

``ai_call_logs`` has a statement trigger that rolls up whatever any statement inserts
(sql/004_rollups.sql). For the worker's COPY that trigger is the costliest part of
a batch: Postgres builds two histograms per row in PL/pgSQL. The worker knows the
rows it inserted, so it adds them up here, minute by minute, and writes one upsert
per rollup key; the trigger stands aside for its transactions (``SET LOCAL
ailedger.rollups = 'writer'``, sql/011_writer_rollups.sql). Other writers (UPDATEs
from re-pricing, hand-made INSERTs) still go through the trigger, and
``ailedger_rebuild_rollups`` recomputes any range from the raw rows: the tests hold
the two definitions to the same figures.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg

#: The transaction setting that tells the table's rollup trigger the writer adds them.
WRITER_SETTING = "ailedger.rollups"

#: Latency bucket bounds in ms: ``ailedger_latency_bounds()`` of sql/004_rollups.sql.
LATENCY_BOUNDS = (
    *range(0, 11),
    *(12, 14, 16, 20, 25, 30, 35, 40, 50, 60, 70, 80, 100),
    *(120, 140, 160, 200, 250, 300, 350, 400, 500, 600, 700, 800, 1000),
    *(1200, 1400, 1600, 2000, 2500, 3000, 3500, 4000, 5000, 6000, 7000, 8000, 10000),
    *(12000, 14000, 16000, 20000, 25000, 30000, 35000, 40000, 50000, 60000, 70000, 80000),
    *(100000, 120000, 140000, 160000, 200000, 250000, 300000, 350000, 400000, 500000),
    *(600000, 700000, 800000, 1000000),
)
LATENCY_BUCKETS = len(LATENCY_BOUNDS) + 1
CONFIDENCE_BUCKETS = 20
_REASON_NUMBER = re.compile(r"[0-9]+\.[0-9]+")

# Tallies, by position in a rollup's list of counts.
(
    _CALLS,
    _ERRORS,
    _FALLBACKS,
    _INPUT,
    _OUTPUT,
    _CACHE_READ,
    _CACHE_WRITE,
    _CACHE_WRITE_1H,
    _UNPRICED,
    _NO_USAGE,
    _LATENCY_COUNT,
    _LATENCY_SUM,
    _CONFIDENCE_COUNT,
) = range(13)
_TALLIES = 13

_UPSERT = """
INSERT INTO ai_call_rollups AS r (
    grain, bucket_start, task, model, provider, calls, errors, fallbacks,
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
    cache_write_1h_tokens, unpriced, no_usage, latency_count, latency_sum_ms,
    confidence_count, cost, confidence_sum, latency_max_ms, latency_hist, confidence_hist
)
SELECT u.grain, u.bucket_start, u.task, u.model, u.provider, u.calls, u.errors, u.fallbacks,
    u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens,
    u.cache_write_1h_tokens, u.unpriced, u.no_usage, u.latency_count, u.latency_sum_ms,
    u.confidence_count, u.cost, u.confidence_sum, u.latency_max_ms,
    u.latency_hist::INTEGER[], u.confidence_hist::INTEGER[]
FROM unnest(
    %s::TEXT[], %s::TIMESTAMPTZ[], %s::TEXT[], %s::TEXT[], %s::TEXT[],
    %s::BIGINT[], %s::BIGINT[], %s::BIGINT[], %s::BIGINT[], %s::BIGINT[], %s::BIGINT[],
    %s::BIGINT[], %s::BIGINT[], %s::BIGINT[], %s::BIGINT[], %s::BIGINT[], %s::BIGINT[],
    %s::BIGINT[], %s::NUMERIC[], %s::NUMERIC[], %s::INTEGER[], %s::TEXT[], %s::TEXT[]
) AS u (
    grain, bucket_start, task, model, provider, calls, errors, fallbacks,
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
    cache_write_1h_tokens, unpriced, no_usage, latency_count, latency_sum_ms,
    confidence_count, cost, confidence_sum, latency_max_ms, latency_hist, confidence_hist
)
-- Key order, as the trigger's: concurrent writers lock rollup rows in one order.
ORDER BY 1, 2, 3, 4, 5
ON CONFLICT (grain, bucket_start, task, model, provider) DO UPDATE SET
    calls = r.calls + EXCLUDED.calls,
    errors = r.errors + EXCLUDED.errors,
    fallbacks = r.fallbacks + EXCLUDED.fallbacks,
    input_tokens = r.input_tokens + EXCLUDED.input_tokens,
    output_tokens = r.output_tokens + EXCLUDED.output_tokens,
    cache_read_tokens = r.cache_read_tokens + EXCLUDED.cache_read_tokens,
    cache_write_tokens = r.cache_write_tokens + EXCLUDED.cache_write_tokens,
    cache_write_1h_tokens = r.cache_write_1h_tokens + EXCLUDED.cache_write_1h_tokens,
    cost = r.cost + EXCLUDED.cost,
    unpriced = r.unpriced + EXCLUDED.unpriced,
    no_usage = r.no_usage + EXCLUDED.no_usage,
    latency_count = r.latency_count + EXCLUDED.latency_count,
    latency_sum_ms = r.latency_sum_ms + EXCLUDED.latency_sum_ms,
    latency_max_ms = GREATEST(r.latency_max_ms, EXCLUDED.latency_max_ms),
    latency_hist = ailedger_histogram_add(r.latency_hist, EXCLUDED.latency_hist),
    confidence_count = r.confidence_count + EXCLUDED.confidence_count,
    confidence_sum = r.confidence_sum + EXCLUDED.confidence_sum,
    confidence_hist = ailedger_histogram_add(r.confidence_hist, EXCLUDED.confidence_hist)
"""
_UPSERT_REASONS = """
INSERT INTO ai_call_fallback_rollups AS f (grain, bucket_start, task, model, reason, calls)
SELECT * FROM unnest(%s::TEXT[], %s::TIMESTAMPTZ[], %s::TEXT[], %s::TEXT[], %s::TEXT[],
                     %s::BIGINT[])
ORDER BY 1, 2, 3, 4, 5
ON CONFLICT (grain, bucket_start, task, model, reason) DO UPDATE SET
    calls = f.calls + EXCLUDED.calls
"""


class _Rollup:
    """The running figures of one rollup key."""

    __slots__ = ("confidence_hist", "confidence_sum", "cost", "latency_hist", "latency_max", "n")

    def __init__(self) -> None:
        self.n = [0] * _TALLIES
        self.cost = Decimal(0)
        self.confidence_sum = Decimal(0)
        self.latency_max: int | None = None
        self.latency_hist = [0] * LATENCY_BUCKETS
        self.confidence_hist = [0] * CONFIDENCE_BUCKETS

    def merge(self, other: _Rollup) -> None:
        self.n = [a + b for a, b in zip(self.n, other.n, strict=True)]
        self.cost += other.cost
        self.confidence_sum += other.confidence_sum
        if other.latency_max is not None:
            self.latency_max = max(self.latency_max or 0, other.latency_max)
        self.latency_hist = [
            a + b for a, b in zip(self.latency_hist, other.latency_hist, strict=True)
        ]
        self.confidence_hist = [
            a + b for a, b in zip(self.confidence_hist, other.confidence_hist, strict=True)
        ]


Key = tuple[datetime, str, str, str]


def reason_key(reason: str | None) -> str:
    """``ailedger_reason_key``: reasons differing only in their decimals are one."""
    return _REASON_NUMBER.sub("<n>", reason or "")[:200]


def _minute(ts: datetime) -> datetime:
    if ts.tzinfo is not UTC:
        ts = ts.astimezone(UTC)
    return ts.replace(second=0, microsecond=0)


GrainKey = tuple[Any, ...]  # (grain, bucket start, task, model, provider or reason)


def roll_up(rows: Sequence[Any]) -> tuple[dict[GrainKey, _Rollup], dict[GrainKey, int]]:
    """The rollups (minute, hour and day) and fallback-reason counts of ``rows``."""
    minutes: dict[Key, _Rollup] = {}
    reasons: dict[tuple[datetime, str, str, str], int] = {}
    bisect_left = bisect.bisect_left
    for row in rows:
        minute = _minute(row.timestamp)
        key = (minute, row.task, row.model, row.provider or "")
        rollup = minutes.get(key)
        if rollup is None:
            rollup = minutes[key] = _Rollup()
        n = rollup.n
        n[_CALLS] += 1
        if row.error_message is not None:
            n[_ERRORS] += 1
        if row.action == "fallback_to_rules":
            n[_FALLBACKS] += 1
            why = (minute, row.task, row.model, reason_key(row.fallback_reason))
            reasons[why] = reasons.get(why, 0) + 1
        if row.input_tokens is not None:
            n[_INPUT] += row.input_tokens
        if row.output_tokens is not None:
            n[_OUTPUT] += row.output_tokens
        if row.cache_read_tokens is not None:
            n[_CACHE_READ] += row.cache_read_tokens
        if row.cache_write_tokens is not None:
            n[_CACHE_WRITE] += row.cache_write_tokens
        if row.cache_write_1h_tokens is not None:
            n[_CACHE_WRITE_1H] += row.cache_write_1h_tokens
        if row.cost is None:
            n[_UNPRICED] += 1
        else:
            rollup.cost += row.cost
        if row.cost_source == "no_usage":
            n[_NO_USAGE] += 1
        latency = row.latency_ms
        if latency is not None:
            n[_LATENCY_COUNT] += 1
            n[_LATENCY_SUM] += latency
            if rollup.latency_max is None or latency > rollup.latency_max:
                rollup.latency_max = latency
            rollup.latency_hist[bisect_left(LATENCY_BOUNDS, latency)] += 1
        score = row.confidence_score
        if score is not None:
            n[_CONFIDENCE_COUNT] += 1
            rollup.confidence_sum += score
            rollup.confidence_hist[min(int(score * CONFIDENCE_BUCKETS), 19)] += 1
    out: dict[GrainKey, _Rollup] = {}
    reason_out: dict[GrainKey, int] = {}
    for (minute, *rest), rollup in minutes.items():
        out[("minute", minute, *rest)] = rollup
        for grain, start in _coarser(minute):
            coarse = out.get((grain, start, *rest))
            if coarse is None:
                coarse = out[(grain, start, *rest)] = _Rollup()
            coarse.merge(rollup)
    for (minute, *rest), calls in reasons.items():
        reason_out[("minute", minute, *rest)] = calls
        for grain, start in _coarser(minute):
            reason_out[(grain, start, *rest)] = reason_out.get((grain, start, *rest), 0) + calls
    return out, reason_out


def _coarser(minute: datetime) -> tuple[tuple[str, datetime], tuple[str, datetime]]:
    hour = minute.replace(minute=0)
    return ("hour", hour), ("day", hour.replace(hour=0))


def _histogram(counts: list[int]) -> str:
    return "{" + ",".join(map(str, counts)) + "}"


def add_rollups(cur: psycopg.Cursor[Any], rows: Sequence[Any]) -> None:
    """Add ``rows`` (just inserted, in this transaction) to the rollups: one upsert per key."""
    if not rows:
        return
    rollups, reasons = roll_up(rows)
    keys = list(rollups)
    columns: list[list[Any]] = [[k[i] for k in keys] for i in range(5)]
    figures = list(rollups.values())
    columns += [[r.n[i] for r in figures] for i in range(_TALLIES)]
    columns += [
        [r.cost for r in figures],
        [r.confidence_sum for r in figures],
        [r.latency_max for r in figures],
        [_histogram(r.latency_hist) for r in figures],
        [_histogram(r.confidence_hist) for r in figures],
    ]
    cur.execute(_UPSERT, columns)
    if reasons:
        why = list(reasons)
        cur.execute(
            _UPSERT_REASONS, [*([k[i] for k in why] for i in range(5)), list(reasons.values())]
        )

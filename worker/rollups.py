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
from operator import add, itemgetter
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
        self.n = list(map(add, self.n, other.n))
        self.cost += other.cost
        self.confidence_sum += other.confidence_sum
        if other.latency_max is not None:
            self.latency_max = max(self.latency_max or 0, other.latency_max)
        self.latency_hist = list(map(add, self.latency_hist, other.latency_hist))
        self.confidence_hist = list(map(add, self.confidence_hist, other.confidence_hist))


#: (grain, bucket start, task, model, provider — or the reason, for fallback counts)
GrainKey = tuple[Any, ...]
#: The columns a rollup reads, by name: picked from each row in one call.
_READS = (
    "timestamp",
    "task",
    "model",
    "provider",
    "error_message",
    "action",
    "fallback_reason",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "cost",
    "cost_source",
    "latency_ms",
    "confidence_score",
)
_GRAIN_MINUTES = (("minute", 1), ("hour", 60), ("day", 1440))


def reason_key(reason: str | None) -> str:
    """``ailedger_reason_key``: reasons differing only in their decimals are one."""
    return _REASON_NUMBER.sub("<n>", reason or "")[:200]


#: What :func:`roll_up` returns: the rollups, and the fallback-reason counts.
Tallies = tuple[dict[GrainKey, "_Rollup"], dict[GrainKey, int]]


def roll_up(rows: Sequence[Any]) -> Tallies:
    """The rollups (minute, hour and day, UTC) and fallback-reason counts of ``rows``.

    ``rows`` are named tuples with ``ai_call_logs``'s column names (worker.store.Row).
    Rows are added up per minute first (minutes since the epoch, as integers), then
    the minutes into their hours and days.
    """
    if not rows:
        return {}, {}
    fields = rows[0]._fields
    pick = itemgetter(*(fields.index(name) for name in _READS))
    minutes: dict[tuple[int, str, str, str], _Rollup] = {}
    reasons: dict[tuple[int, str, str, str], int] = {}
    bisect_left = bisect.bisect_left
    for (
        ts,
        task,
        model,
        provider,
        error,
        action,
        reason,
        input_tokens,
        output_tokens,
        cache_read,
        cache_write,
        cache_write_1h,
        cost,
        source,
        latency,
        score,
    ) in map(pick, rows):
        minute = int(ts.timestamp() // 60)
        key = (minute, task, model, provider or "")
        rollup = minutes.get(key)
        if rollup is None:
            rollup = minutes[key] = _Rollup()
        n = rollup.n
        n[_CALLS] += 1
        if error is not None:
            n[_ERRORS] += 1
        if action == "fallback_to_rules":
            n[_FALLBACKS] += 1
            why = (minute, task, model, reason_key(reason))
            reasons[why] = reasons.get(why, 0) + 1
        if input_tokens is not None:
            n[_INPUT] += input_tokens
        if output_tokens is not None:
            n[_OUTPUT] += output_tokens
        if cache_read is not None:
            n[_CACHE_READ] += cache_read
        if cache_write is not None:
            n[_CACHE_WRITE] += cache_write
        if cache_write_1h is not None:
            n[_CACHE_WRITE_1H] += cache_write_1h
        if cost is None:
            n[_UNPRICED] += 1
        else:
            rollup.cost += cost
        if source == "no_usage":
            n[_NO_USAGE] += 1
        if latency is not None:
            n[_LATENCY_COUNT] += 1
            n[_LATENCY_SUM] += latency
            if rollup.latency_max is None or latency > rollup.latency_max:
                rollup.latency_max = latency
            rollup.latency_hist[bisect_left(LATENCY_BOUNDS, latency)] += 1
        if score is not None:
            n[_CONFIDENCE_COUNT] += 1
            rollup.confidence_sum += score
            rollup.confidence_hist[min(int(score * CONFIDENCE_BUCKETS), 19)] += 1
    starts: dict[int, datetime] = {}

    def start(minute: int, grain_minutes: int) -> datetime:
        bucket = minute - minute % grain_minutes
        moment = starts.get(bucket)
        if moment is None:
            moment = starts[bucket] = datetime.fromtimestamp(bucket * 60, UTC)
        return moment

    out: dict[GrainKey, _Rollup] = {}
    for (minute, *rest), rollup in minutes.items():
        out[("minute", start(minute, 1), *rest)] = rollup
        for grain, size in _GRAIN_MINUTES[1:]:
            at: GrainKey = (grain, start(minute, size), *rest)
            coarse = out.get(at)
            if coarse is None:
                coarse = out[at] = _Rollup()
            coarse.merge(rollup)
    reason_out: dict[GrainKey, int] = {}
    for (minute, *rest), calls in reasons.items():
        for grain, size in _GRAIN_MINUTES:
            bucket: GrainKey = (grain, start(minute, size), *rest)
            reason_out[bucket] = reason_out.get(bucket, 0) + calls
    return out, reason_out


def _histogram(counts: list[int]) -> str:
    return "{" + ",".join(map(str, counts)) + "}"


# The upsert's columns go as array literals written here, one string per column:
# psycopg's list dumper handles each element in Python (a dumper call and a regex
# each). For a batch of the bench's traffic (~130 rollup keys, 23 columns) that was
# 16% of the writer's own work: 73.5k instructions a row before, 61.7k after.
def _texts(values: Sequence[str]) -> str:
    """A text[] literal: every element quoted, its backslashes and quotes escaped."""
    if not values:
        return "{}"
    return '{"' + '","'.join(v.replace("\\", "\\\\").replace('"', '\\"') for v in values) + '"}'


def _numbers(values: Sequence[int | Decimal | None]) -> str:
    """A numeric array literal (bigint[], numeric[], integer[]); None is NULL."""
    return "{" + ",".join("NULL" if v is None else str(v) for v in values) + "}"


def _key_columns(keys: Sequence[GrainKey]) -> list[str]:
    """The five key columns (grain, bucket start, task, model, provider or reason)."""
    return [
        _texts([k[0] for k in keys]),
        _texts([k[1].isoformat() for k in keys]),
        *(_texts([k[i] for k in keys]) for i in (2, 3, 4)),
    ]


def add_rollups(
    cur: psycopg.Cursor[Any], rows: Sequence[Any], tallies: Tallies | None = None
) -> None:
    """Add ``rows`` (just inserted, in this transaction) to the rollups: one upsert per key.

    ``tallies``: ``roll_up(rows)``, when the caller added them up already.
    """
    if not rows:
        return
    rollups, reasons = roll_up(rows) if tallies is None else tallies
    keys = list(rollups)
    figures = list(rollups.values())
    columns = [
        *_key_columns(keys),
        *(_numbers([r.n[i] for r in figures]) for i in range(_TALLIES)),
        _numbers([r.cost for r in figures]),
        _numbers([r.confidence_sum for r in figures]),
        _numbers([r.latency_max for r in figures]),
        _texts([_histogram(r.latency_hist) for r in figures]),
        _texts([_histogram(r.confidence_hist) for r in figures]),
    ]
    cur.execute(_UPSERT, columns)
    if reasons:
        why = list(reasons)
        cur.execute(
            _UPSERT_REASONS,
            [*_key_columns(why), _numbers(list(reasons.values()))],
        )

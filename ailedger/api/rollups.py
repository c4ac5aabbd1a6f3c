"""Reading the rollups (sql/004_rollups.sql): any time range from a few hundred rows.

The trigger keeps rows at three grains (minute, hour, day). A range is tiled by
:func:`cover` with the coarsest whole buckets that fit — days in the middle, hours
and minutes at the edges — so totals, percentiles and fallback reasons read a
bounded number of rows however many calls the range holds. Ranges have minute
resolution. Latency percentiles come from fixed histogram buckets: the reported
value is the upper bound of the bucket holding the percentile, capped at the
largest latency seen — never below the true value and at most 25% above it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

#: Rollup grains, coarsest first.
GRAINS = ("day", "hour", "minute")
#: Timeline buckets the API offers; week and month are built from day rows.
BUCKETS = ("minute", "hour", "day", "week", "month")
CONFIDENCE_BINS = 20
_STEP = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}


@dataclass(frozen=True, slots=True)
class Segment:
    grain: str
    start: datetime
    end: datetime


def floor_time(ts: datetime, unit: str) -> datetime:
    """The start of the UTC ``unit`` (minute … month) holding ``ts``."""
    ts = ts.astimezone(UTC)
    if unit == "minute":
        return ts.replace(second=0, microsecond=0)
    if unit == "hour":
        return ts.replace(minute=0, second=0, microsecond=0)
    day = ts.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "day":
        return day
    if unit == "week":  # ISO weeks start on Monday, as Postgres' date_trunc('week')
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    raise ValueError(f"unknown time unit {unit!r}")


def next_time(ts: datetime, unit: str) -> datetime:
    """The start of the ``unit`` after the one starting at ``ts``."""
    if unit == "week":
        return ts + timedelta(days=7)
    if unit == "month":
        return ts.replace(year=ts.year + ts.month // 12, month=ts.month % 12 + 1)
    return ts + _STEP[unit]


def ceil_time(ts: datetime, unit: str) -> datetime:
    start = floor_time(ts, unit)
    return start if start == ts.astimezone(UTC) else next_time(start, unit)


def cover(start: datetime, end: datetime, *, coarsest: str = "day") -> list[Segment]:
    """Whole rollup buckets, none coarser than ``coarsest``, tiling minute-aligned [start, end)."""
    grains = GRAINS[GRAINS.index(coarsest) :]
    segments: list[Segment] = []

    def tile(lo: datetime, hi: datetime, level: int) -> None:
        if lo >= hi:
            return
        grain = grains[level]
        if grain == "minute":
            segments.append(Segment(grain, lo, hi))
            return
        first, last = ceil_time(lo, grain), floor_time(hi, grain)
        if first < last:
            segments.append(Segment(grain, first, last))
            tile(lo, first, level + 1)
            tile(last, hi, level + 1)
        else:
            tile(lo, hi, level + 1)

    tile(start, end, 0)
    return segments


@dataclass(slots=True)
class Tally:
    """Sums of one group of calls, mergeable; what every figure of the API is made of."""

    calls: int = 0
    errors: int = 0
    fallbacks: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost: Decimal = Decimal(0)
    unpriced: int = 0
    latency_count: int = 0
    latency_sum_ms: int = 0
    latency_max_ms: int | None = None
    confidence_count: int = 0
    confidence_sum: Decimal = Decimal(0)
    latency_hist: list[int] = field(default_factory=list)
    confidence_hist: list[int] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        # input_tokens already holds the cache reads and writes (SPEC §2).
        return self.input_tokens + self.output_tokens

    def add(self, other: Tally) -> None:
        for name in (
            "calls", "errors", "fallbacks", "input_tokens", "output_tokens",
            "cache_read_tokens", "cache_write_tokens", "cost", "unpriced",
            "latency_count", "latency_sum_ms", "confidence_count", "confidence_sum",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.latency_max_ms is not None:
            self.latency_max_ms = max(self.latency_max_ms or 0, other.latency_max_ms)
        self.latency_hist = _add(self.latency_hist, other.latency_hist)
        self.confidence_hist = _add(self.confidence_hist, other.confidence_hist)

    def latency_percentile(self, q: float, bounds: Sequence[int]) -> int | None:
        """Nearest-rank ``q`` percentile (0 < q <= 1) from the histogram; None without data."""
        total = sum(self.latency_hist)
        if total <= 0:
            return None
        rank = max(1, math.ceil(q * total))
        seen = 0
        for index, count in enumerate(self.latency_hist):
            seen += count
            if seen >= rank:
                upper = bounds[index] if index < len(bounds) else None
                if upper is None:
                    return self.latency_max_ms
                return upper if self.latency_max_ms is None else min(upper, self.latency_max_ms)
        return self.latency_max_ms


def _add(a: list[int], b: list[int]) -> list[int]:
    if not a:
        return list(b)
    if not b:
        return a
    return [x + y for x, y in zip(a, b, strict=True)]


_TALLY_COLUMNS = """
    sum(r.calls)::bigint, sum(r.errors)::bigint, sum(r.fallbacks)::bigint,
    sum(r.input_tokens)::bigint, sum(r.output_tokens)::bigint,
    sum(r.cache_read_tokens)::bigint, sum(r.cache_write_tokens)::bigint,
    sum(r.cost), sum(r.unpriced)::bigint, sum(r.latency_count)::bigint,
    sum(r.latency_sum_ms)::bigint, max(r.latency_max_ms),
    sum(r.confidence_count)::bigint, sum(r.confidence_sum)"""


def _where(
    segments: Sequence[Segment],
    tasks: Sequence[str] | None,
    models: Sequence[str] | None,
    providers: Sequence[str] | None = None,
) -> tuple[str, list[Any]]:
    """The WHERE clause and parameters selecting the segments' rows, filtered.

    Ranges spelled out (rather than a join with arrays of segments) let Postgres plan one
    primary-key range scan per segment with its real selectivity.
    """
    ranges = ["(r.grain = %s AND r.bucket_start >= %s AND r.bucket_start < %s)"] * len(segments)
    clause = f"({' OR '.join(ranges) or 'FALSE'})"
    params: list[Any] = [v for s in segments for v in (s.grain, s.start, s.end)]
    if tasks:
        clause += " AND r.task = ANY(%s)"
        params.append(list(tasks))
    if models:
        clause += " AND r.model = ANY(%s)"
        params.append(list(models))
    if providers:
        clause += " AND r.provider = ANY(%s)"
        params.append(list(providers))
    return clause, params


Key = tuple[str, str, str]


def read_tallies(
    conn: psycopg.Connection[Any],
    segments: Sequence[Segment],
    latency_buckets: int,
    *,
    tasks: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
) -> dict[Key, Tally]:
    """One tally per (task, model, provider) over the segments, histograms included."""
    where, params = _where(segments, tasks, models)
    # Summing each histogram bucket by subscript is a plain aggregate per column:
    # several times faster than unnesting the arrays.
    buckets = ", ".join(
        [f"sum(r.latency_hist[{i}])::bigint" for i in range(1, latency_buckets + 1)]
        + [f"sum(r.confidence_hist[{i}])::bigint" for i in range(1, CONFIDENCE_BINS + 1)]
    )
    query = f"""SELECT r.task, r.model, r.provider,{_TALLY_COLUMNS}, {buckets}
        FROM ai_call_rollups r WHERE {where} GROUP BY 1, 2, 3"""
    tallies: dict[Key, Tally] = {}
    scalars = 14
    for task, model, provider, *sums in conn.execute(query, params):
        tally = Tally(*sums[:scalars])
        histograms = [int(v or 0) for v in sums[scalars:]]
        tally.latency_hist = histograms[:latency_buckets]
        tally.confidence_hist = histograms[latency_buckets:]
        tallies[(task, model, provider)] = tally
    return tallies


def read_timeline(
    conn: psycopg.Connection[Any],
    segments: Sequence[Segment],
    bucket: str,
    *,
    tasks: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
) -> list[tuple[datetime, str, int, int, Decimal]]:
    """(bucket start, model, calls, tokens, cost) for each bucket and model with calls."""
    where, params = _where(segments, tasks, models)
    query = f"""
        SELECT date_trunc(%s, r.bucket_start, 'UTC'), r.model, sum(r.calls)::bigint,
               sum(r.input_tokens + r.output_tokens)::bigint,
               sum(r.cost)
        FROM ai_call_rollups r WHERE {where}
        GROUP BY 1, 2 HAVING sum(r.calls) > 0 ORDER BY 1, 2"""
    rows = conn.execute(query, [bucket, *params])
    return [tuple(row) for row in rows]


def read_fallback_reasons(
    conn: psycopg.Connection[Any],
    segments: Sequence[Segment],
    *,
    tasks: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    limit: int = 10,
) -> list[tuple[str, int]]:
    """The most frequent fallback reasons with their call counts, most frequent first."""
    where, params = _where(segments, tasks, models)
    query = f"""
        SELECT r.reason, sum(r.calls)::bigint FROM ai_call_fallback_rollups r WHERE {where}
        GROUP BY 1 HAVING sum(r.calls) > 0 ORDER BY 2 DESC, r.reason COLLATE "C" LIMIT %s"""
    rows = conn.execute(query, [*params, limit])
    return [(reason, int(calls)) for reason, calls in rows]


def latency_bounds(conn: psycopg.Connection[Any]) -> tuple[int, ...]:
    """Upper bounds (ms) of the latency histogram's buckets, as the database defines them."""
    row = conn.execute("SELECT ailedger_latency_bounds()").fetchone()
    assert row is not None
    return tuple(row[0])


def confidence_bins() -> list[tuple[Decimal, Decimal]]:
    """(low, high) of each confidence histogram bin; the last one includes 1.00."""
    width = Decimal(1) / CONFIDENCE_BINS
    return [(width * i, width * (i + 1)) for i in range(CONFIDENCE_BINS)]

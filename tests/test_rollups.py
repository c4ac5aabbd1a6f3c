"""Rollups equal the raw rows: after inserts, re-deliveries, re-pricing, concurrent writers."""

from __future__ import annotations

import bisect
import random
import re
import threading
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from hypothesis import given
from hypothesis import strategies as st

from ailedger.api.rollups import GRAINS, ceil_time, cover, floor_time
from worker.rollups import roll_up
from worker.store import Row, write_batch

T0 = datetime(2025, 3, 30, 22, 0, tzinfo=UTC)
TASKS = ("text_embedding", "image_vision_analysis", "product_classification")
MODELS = ("claude-3-5-sonnet-20241022", "text-embedding-3-small")
REASONS = (
    "confidence 0.61 below threshold 0.70",
    "confidence 0.58 below threshold 0.75",
    "error: RateLimitError: Error code: 429",
    None,
)


def make_rows(rng: random.Random, n: int, *, start: datetime = T0, hours: int = 30) -> list[Row]:
    """Rows as the worker stores them, with every optional field sometimes missing."""
    rows: list[Row] = []
    for _ in range(n):
        priced = rng.random() < 0.8
        fallback = rng.random() < 0.2
        cache_write = rng.choice((None, None, rng.randint(0, 3_000)))
        one_hour = None if cache_write is None else rng.choice((None, rng.randint(0, cache_write)))
        no_usage = priced and rng.random() < 0.1
        rows.append(
            Row(
                id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                timestamp=start + timedelta(seconds=rng.uniform(0, hours * 3600)),
                job_id=None,
                job_key=None,
                task=rng.choice(TASKS),
                model=rng.choice(MODELS),
                provider=rng.choice(("anthropic", "openai", None)),
                input_tokens=rng.choice((None, rng.randint(0, 5_000))),
                output_tokens=rng.choice((None, rng.randint(0, 900))),
                cache_read_tokens=rng.choice((None, None, rng.randint(0, 3_000))),
                cache_write_tokens=cache_write,
                cache_write_1h_tokens=one_hour,
                image_id=None,
                cost=Decimal(0 if no_usage else rng.randint(0, 10**9)) / Decimal(10**12)
                if priced
                else None,
                cost_source=("no_usage" if no_usage else "catalog") if priced else "unpriced",
                latency_ms=rng.choice((None, rng.randint(0, 70_000), rng.randint(0, 2_000_000))),
                confidence_score=rng.choice((None, Decimal(rng.randint(0, 100)) / 100)),
                confidence_breakdown=None,
                action="fallback_to_rules" if fallback else "use_ai_result",
                fallback_reason=rng.choice(REASONS) if fallback else None,
                request_data=None,
                response_data=None,
                error_message="RateLimitError: 429" if rng.random() < 0.05 else None,
                ingest_notes=None,
                service=None,
            )
        )
    return rows


def expected_rollups(conn: psycopg.Connection[Any]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The rollups recomputed in Python from the raw rows, for every grain."""
    bounds = conn.execute("SELECT ailedger_latency_bounds()").fetchone()[0]  # type: ignore[index]
    raw = conn.execute(
        "SELECT timestamp, task, model, provider, input_tokens, output_tokens,"
        " cache_read_tokens, cache_write_tokens, cache_write_1h_tokens, cost, cost_source,"
        " latency_ms, confidence_score, action, error_message FROM ai_call_logs"
    ).fetchall()
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for (
        ts,
        task,
        model,
        provider,
        i,
        o,
        cr,
        cw,
        cw1h,
        cost,
        source,
        lat,
        conf,
        action,
        error,
    ) in raw:
        for grain in GRAINS:
            key = (grain, floor_time(ts, grain), task, model, provider or "")
            r = out.setdefault(
                key,
                defaultdict(
                    int,
                    cost=Decimal(0),
                    confidence_sum=Decimal(0),
                    latency_max_ms=None,
                    latency_hist=[0] * (len(bounds) + 1),
                    confidence_hist=[0] * 20,
                ),
            )
            r["calls"] += 1
            r["errors"] += error is not None
            r["fallbacks"] += action == "fallback_to_rules"
            r["input_tokens"] += i or 0
            r["output_tokens"] += o or 0
            r["cache_read_tokens"] += cr or 0
            r["cache_write_tokens"] += cw or 0
            r["cache_write_1h_tokens"] += cw1h or 0
            r["cost"] += cost or 0
            r["unpriced"] += cost is None
            r["no_usage"] += source == "no_usage"
            if lat is not None:
                r["latency_count"] += 1
                r["latency_sum_ms"] += lat
                r["latency_max_ms"] = max(r["latency_max_ms"] or 0, lat)
                r["latency_hist"][bisect.bisect_left(bounds, lat)] += 1
            if conf is not None:
                r["confidence_count"] += 1
                r["confidence_sum"] += conf
                r["confidence_hist"][min(int(conf * 20), 19)] += 1
    return {k: dict(v) for k, v in out.items()}


def stored_rollups(conn: psycopg.Connection[Any]) -> dict[tuple[Any, ...], dict[str, Any]]:
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    rows = cur.execute("SELECT * FROM ai_call_rollups WHERE calls <> 0").fetchall()
    out = {}
    for row in rows:
        key = tuple(row.pop(k) for k in ("grain", "bucket_start", "task", "model", "provider"))
        out[key] = row
    return out


def assert_rollups_match(conn: psycopg.Connection[Any], *, moved: bool = False) -> None:
    """Every rollup equals its recomputation; after rows moved, a maximum may stay too high."""
    expected, stored = expected_rollups(conn), stored_rollups(conn)
    assert stored.keys() == expected.keys()
    for key, want in expected.items():
        got = stored[key]
        for name, value in want.items():
            if moved and name == "latency_max_ms":
                assert value is None or got[name] >= value, key
            else:
                assert got[name] == value, (key, name, got[name], value)
    reasons = conn.execute(
        "SELECT grain, bucket_start, task, model, reason, calls FROM ai_call_fallback_rollups"
        " WHERE calls <> 0 ORDER BY 1, 2, 3, 4, 5"
    ).fetchall()
    raw: Counter[tuple[Any, ...]] = Counter()
    for ts, task, model, reason in conn.execute(
        "SELECT timestamp, task, model, fallback_reason FROM ai_call_logs"
        " WHERE action = 'fallback_to_rules'"
    ):
        for grain in GRAINS:
            raw[(grain, floor_time(ts, grain), task, model, reason_key(reason))] += 1
    assert {row[:5]: row[5] for row in reasons} == raw


def reason_key(reason: str | None) -> str:
    """Reasons differing only in their decimals are one: "confidence <n> below …"."""
    return re.sub(r"[0-9]+\.[0-9]+", "<n>", reason or "")[:200]


def test_inserted_rows_are_rolled_up_at_every_grain(db) -> None:
    rows = make_rows(random.Random(1), 2_000)
    for start in range(0, len(rows), 500):
        assert write_batch(db, rows[start : start + 500], stream="s") == 500
    assert_rollups_match(db)
    assert db.execute("SELECT sum(calls) FROM ai_call_rollups WHERE grain = 'day'").fetchone() == (
        2_000,
    )


def test_names_with_array_syntax_in_them_are_rolled_up_as_written(db) -> None:
    """The upsert sends its columns as array literals: quotes, commas, braces stay data."""
    odd = ('say "hi"', "back\\slash", "a,b", "{braces}", "NULL", " spaced ", "ünï", '\\"')
    rng = random.Random(7)
    rows = [
        row._replace(
            task=rng.choice(odd),
            model=rng.choice(odd),
            provider=rng.choice((*odd, None)),
            fallback_reason=rng.choice(odd) if row.action == "fallback_to_rules" else None,
        )
        for row in make_rows(rng, 600)
    ]
    assert write_batch(db, rows, stream="s") == 600
    assert_rollups_match(db)
    stored = {t for (t,) in db.execute("SELECT DISTINCT task FROM ai_call_rollups")}
    assert stored == {row.task for row in rows}


def test_a_batch_delivered_again_adds_nothing(db) -> None:
    rng = random.Random(2)
    first, second = make_rows(rng, 600), make_rows(rng, 400)
    write_batch(db, first, stream="s")
    before = stored_rollups(db)
    assert write_batch(db, first, stream="s") == 0
    assert stored_rollups(db) == before
    # Half old, half new: only the new half counts.
    assert write_batch(db, first[:300] + second, stream="s") == 400
    assert_rollups_match(db)


def test_tallies_added_up_beforehand_count_only_the_rows_inserted(db) -> None:
    """The worker adds a batch up before its COPY: a batch partly stored counts its new rows."""
    rng = random.Random(3)
    first, second = make_rows(rng, 500), make_rows(rng, 300)
    assert write_batch(db, first, stream="s", tallies=roll_up(first)) == 500
    again = first[:200] + second
    assert write_batch(db, again, stream="s", tallies=roll_up(again)) == 300
    assert_rollups_match(db)


def test_repricing_moves_the_rollups_and_other_updates_do_not(db) -> None:
    write_batch(db, make_rows(random.Random(3), 1_000), stream="s")
    db.execute(
        "UPDATE ai_call_logs SET cost = 0.25, cost_source = 'override'"
        " WHERE model = 'text-embedding-3-small'"
    )
    db.execute("UPDATE ai_call_logs SET cost = NULL, cost_source = 'unpriced' WHERE task = %s",
               (TASKS[1],))  # fmt: skip
    assert_rollups_match(db)
    before = stored_rollups(db)
    db.execute("UPDATE ai_call_logs SET ingest_notes = '{\"checked\": true}'")
    assert stored_rollups(db) == before


def test_rows_moved_to_other_buckets_move_their_rollups(db) -> None:
    write_batch(db, make_rows(random.Random(6), 1_000), stream="s")
    db.execute("UPDATE ai_call_logs SET timestamp = timestamp + interval '3 hours',"
               " latency_ms = latency_ms / 2 WHERE task = %s", (TASKS[0],))  # fmt: skip
    # A maximum cannot be taken back out; everything else is exact.
    assert_rollups_match(db, moved=True)
    db.execute("SELECT ailedger_rebuild_rollups('-infinity', 'infinity')")
    assert_rollups_match(db)


def test_rebuild_recomputes_a_range_from_the_raw_rows(db) -> None:
    write_batch(db, make_rows(random.Random(4), 800), stream="s")
    db.execute("DELETE FROM ai_call_rollups WHERE grain = 'hour'")
    db.execute("UPDATE ai_call_rollups SET calls = calls + 7 WHERE grain = 'minute'")
    db.execute("SELECT ailedger_rebuild_rollups(%s, %s)", (T0, T0 + timedelta(hours=30)))
    assert_rollups_match(db)


def test_concurrent_writers_into_the_same_buckets_count_each_row_once(database_url) -> None:
    rng = random.Random(5)
    # Every batch lands in the same few minutes: all writers upsert the same rollup rows.
    batches = [make_rows(rng, 300, hours=0) for _ in range(12)]
    overlap = [b[:100] for b in batches]  # re-deliveries racing with the first delivery
    errors: list[BaseException] = []

    def writer(mine: list[list[Row]]) -> None:
        try:
            with psycopg.connect(database_url, autocommit=True) as conn:
                for batch in mine:
                    write_batch(conn, batch, stream="s")
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [
        threading.Thread(target=writer, args=(batches[k::3] + overlap[(k + 1) % 3 :: 3],))
        for k in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM ai_call_logs").fetchone() == (3_600,)
        assert_rollups_match(conn)


@given(
    start=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2026, 1, 1)),
    minutes=st.integers(min_value=0, max_value=60 * 24 * 40),
)
def test_cover_tiles_a_range_exactly_with_aligned_buckets(start: datetime, minutes: int) -> None:
    lo = floor_time(start.replace(tzinfo=UTC), "minute")
    hi = lo + timedelta(minutes=minutes)
    segments = sorted(cover(lo, hi), key=lambda s: s.start)
    position = lo
    for segment in segments:
        assert segment.start == position < segment.end
        assert floor_time(segment.start, segment.grain) == segment.start
        assert ceil_time(segment.end, segment.grain) == segment.end
        position = segment.end
    assert position == hi
    # Bounded: whole days, then at most 23 hours and 59 minutes on each side.
    assert sum(s.grain != "day" for s in segments) <= 4

"""Worker housekeeping: delivery limits, trimming, departed consumers."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import redis

from producer import AICallLogger
from tests.faults import wait_for
from worker.consumer import Worker
from worker.pricing import PriceBook, Priced
from worker.trimming import remove_departed_consumers, trim_acknowledged


def log_events(settings, n: int, **fields: Any) -> list[str]:  # type: ignore[no-untyped-def]
    logger = AICallLogger(settings.redis_url, stream=settings.stream)
    ids = [logger.log(task="t", model="gpt-4o", input_tokens=i, **fields) for i in range(n)]
    assert logger.flush(10)
    logger.close()
    return ids


def test_acknowledged_entries_are_trimmed_unacknowledged_never(
    settings, redis_client, run_burst
) -> None:
    log_events(settings, 200)
    # A second group that has read nothing yet: its entries must survive any trim.
    redis_client.xgroup_create(settings.stream, "audit", id="0")
    run_burst()
    assert redis_client.xlen(settings.stream) == 200
    # The audit group reads 150 and acknowledges only the first 100.
    read = redis_client.xreadgroup("audit", "a1", {settings.stream: ">"}, count=150)
    ids = [sid for sid, _ in read[0][1]]
    redis_client.xack(settings.stream, "audit", *ids[:100])
    assert trim_acknowledged(redis_client, settings.stream) == 100
    remaining = [sid for sid, _ in redis_client.xrange(settings.stream)]
    assert remaining == ids[100:] + [sid for sid in remaining if sid not in ids]
    assert redis_client.xlen(settings.stream) == 100
    # Once the audit group is done too, a burst worker leaves nothing behind.
    rest = redis_client.xreadgroup("audit", "a1", {settings.stream: ">"}, count=1000)
    redis_client.xack(settings.stream, "audit", *ids[100:], *[sid for sid, _ in rest[0][1]])
    run_burst()
    assert redis_client.xlen(settings.stream) == 0


def test_stream_nobody_reads_is_never_trimmed(settings, redis_client) -> None:
    log_events(settings, 10)
    assert trim_acknowledged(redis_client, settings.stream) == 0
    assert redis_client.xlen(settings.stream) == 10


class PoisonedPrices(PriceBook):
    """Pricing that fails for one model, as a bug in a worker would."""

    def price(self, provider: str | None, model: str, timestamp: datetime, **kw: Any) -> Priced:
        if model == "poison":
            raise RuntimeError("pricing bug for 'poison'")
        return Priced(Decimal("0.001"), "catalog")

    def price_batch(self, events: Any) -> list[Priced]:
        return [self.price(e.get("provider"), e["model"], e["timestamp"]) for e in events]


def test_an_entry_that_keeps_failing_is_dead_lettered_after_the_limit(
    settings, db, redis_client
) -> None:
    logger = AICallLogger(settings.redis_url, stream=settings.stream)
    for i in range(11):
        logger.log(task="t", model="gpt-4o", input_tokens=i)
        if i == 5:
            poison_id = logger.log(task="t", model="poison")
    assert logger.flush(10)
    logger.close()
    fast = settings.model_copy(update={"max_deliveries": 2, "claim_idle_ms": 50})
    worker = Worker(fast, pricebook=PoisonedPrices())
    worker._new_backoff = lambda: _NoWait()  # type: ignore[assignment,method-assign]
    worker.start()
    try:
        wait_for(lambda: db.execute("SELECT count(*) FROM ai_call_rejects").fetchone()[0] == 1)
        wait_for(lambda: db.execute("SELECT count(*) FROM ai_call_logs").fetchone()[0] == 11)
    finally:
        worker.stop(timeout=10)
    reason, count, event_id = db.execute(
        "SELECT reason, delivery_count, event_id FROM ai_call_rejects"
    ).fetchone()
    assert "pricing bug for 'poison'" in reason and count > 2
    assert event_id is None or event_id == poison_id
    assert db.execute("SELECT count(*) FROM ai_call_logs WHERE model = 'poison'").fetchone() == (0,)
    assert redis_client.xinfo_groups(settings.stream)[0]["pending"] == 0


class _NoWait:
    attempts = 0

    def next_delay(self) -> float:
        self.attempts += 1
        return 0.01

    def reset(self) -> None:
        self.attempts = 0


def test_departed_consumers_owning_nothing_are_removed(
    settings, redis_client: redis.Redis, run_burst
) -> None:
    log_events(settings, 4)
    redis_client.xgroup_create(settings.stream, settings.group, id="0")
    read = redis_client.xreadgroup(settings.group, "gone-idle", {settings.stream: ">"}, count=2)
    redis_client.xack(settings.stream, settings.group, *[sid for sid, _ in read[0][1]])
    redis_client.xreadgroup(settings.group, "gone-owning", {settings.stream: ">"}, count=1)
    redis_client.xreadgroup(settings.group, "alive", {settings.stream: ">"}, count=1)
    redis_client.set(f"{settings.stream}:heartbeat:alive", b"{}", ex=30)
    removed = remove_departed_consumers(redis_client, settings.stream, settings.group, idle_ms=0)
    assert removed == ["gone-idle"]
    names = {c["name"] for c in redis_client.xinfo_consumers(settings.stream, settings.group)}
    assert names == {b"gone-owning", b"alive"}

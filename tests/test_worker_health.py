"""What a worker meets and must live through: races, a store that is not ready, a burst's end."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis
import structlog

from ailedger.ops.status import queue_status
from producer import AICallLogger
from tests.faults import run_ailedger, wait_for
from worker.consumer import Worker
from worker.heartbeat import Heartbeat
from worker.trimming import trim_acknowledged


def pending(client: redis.Redis, settings: Any) -> int:
    """Entries delivered and not acknowledged; 0 before the worker made its group."""
    try:
        return int(client.xpending(settings.stream, settings.group)["pending"])
    except redis.ResponseError:  # NOGROUP: the worker has not read yet
        return 0


def log_events(settings: Any, n: int, **fields: Any) -> list[str]:
    logger = AICallLogger(settings.redis_url, stream=settings.stream)
    ids = [logger.log(task="t", model="gpt-4o", input_tokens=i + 1, **fields) for i in range(n)]
    assert logger.flush(10)
    logger.close()
    return ids


class AcksBeforePending(redis.Redis):
    """A client that lets another worker acknowledge everything just before XPENDING.

    That is the interleaving seen with two worker processes: XINFO GROUPS reports
    entries pending, the other process acknowledges them, and XPENDING's summary
    then has no oldest entry.
    """

    other: redis.Redis
    group: str

    def xpending(self, name: Any, groupname: Any) -> Any:  # type: ignore[override]
        for row in self.other.xpending_range(name, groupname, min="-", max="+", count=10_000):
            self.other.xack(name, groupname, row["message_id"])
        return super().xpending(name, groupname)


def test_trimming_survives_entries_acknowledged_meanwhile(settings, redis_client) -> None:
    log_events(settings, 20)
    redis_client.xgroup_create(settings.stream, settings.group, id="0")
    redis_client.xreadgroup(settings.group, "other", {settings.stream: ">"}, count=20)
    racing = AcksBeforePending.from_url(settings.redis_url)
    racing.other = redis_client
    try:
        # Everything was acknowledged by the time XPENDING answered: all of it may go.
        assert trim_acknowledged(racing, settings.stream) == 20
    finally:
        racing.close()
    assert redis_client.xlen(settings.stream) == 0


def test_housekeeping_that_fails_never_stops_a_worker(settings, db, monkeypatch) -> None:
    log_events(settings, 30)

    def broken(*args: Any, **kwargs: Any) -> int:
        raise ValueError("invalid literal for int() with base 10: 'None'")

    monkeypatch.setattr("worker.source.trim_acknowledged", broken)
    worker = Worker(settings, burst=True)
    worker.run()  # returns: the failure is logged, not raised
    assert db.execute("SELECT count(*) FROM ai_call_logs").fetchone() == (30,)
    assert worker.failure is None


def test_burst_claims_what_a_departed_consumer_left_pending(settings, db, redis_client) -> None:
    log_events(settings, 50)
    redis_client.xgroup_create(settings.stream, settings.group, id="0")
    # A worker took 20 entries and died: no heartbeat, nothing acknowledged, not idle long.
    redis_client.xreadgroup(settings.group, "crashed", {settings.stream: ">"}, count=20)
    burst = run_ailedger(settings, "worker", "--burst", timeout=120)
    assert burst.returncode == 0, burst.stderr[-2000:]
    assert db.execute("SELECT count(*) FROM ai_call_logs").fetchone() == (50,)
    assert redis_client.xpending(settings.stream, settings.group)["pending"] == 0


@pytest.mark.parametrize("server", ["redis", "postgres"])
def test_burst_against_an_unreachable_server_gives_up_and_says_why(
    settings, redis_client, server: str
) -> None:
    log_events(settings, 3)
    unreachable = {"redis": "redis://127.0.0.1:1/0", "postgres": "postgresql://127.0.0.1:1/x"}
    variable = {"redis": "AILEDGER_REDIS_URL", "postgres": "AILEDGER_DATABASE_URL"}[server]
    burst = run_ailedger(
        settings,
        "worker",
        "--burst",
        timeout=120,
        AILEDGER_BURST_DEADLINE_S="2",
        **{variable: unreachable[server]},
    )
    assert burst.returncode == 1, burst.stderr[-2000:]
    output = burst.stdout + burst.stderr
    assert "gave up after 2s without a working server" in output and server in output
    if server == "postgres":  # nothing was acknowledged: a later worker stores it
        assert redis_client.xpending(settings.stream, settings.group)["pending"] == 3


def test_a_schema_problem_holds_the_batch_says_so_once_and_status_shows_it(
    settings, db, redis_client
) -> None:
    db.execute("ALTER TABLE ai_call_logs RENAME COLUMN fallback_reason TO fallback_note")
    log_events(settings, 5)
    worker = Worker(settings, burst=False)
    with structlog.testing.capture_logs() as logs:
        worker.start()
        try:
            key = f"{settings.stream}:heartbeat:{worker.consumer}"
            wait_for(lambda: b"ailedger migrate" in (redis_client.get(key) or b""))
            beat = Heartbeat.decode(redis_client.get(key))
            assert beat.problem and "fallback_reason" in beat.problem
            found = queue_status(redis_client, settings)
            assert not found.ok
            assert any("cannot store" in p and "ailedger migrate" in p for p in found.problems)
            # Held like an outage: nothing dead-lettered, nothing acknowledged.
            assert db.execute("SELECT count(*) FROM ai_call_rejects").fetchone() == (0,)
            assert redis_client.xpending(settings.stream, settings.group)["pending"] == 5
            db.execute("ALTER TABLE ai_call_logs RENAME COLUMN fallback_note TO fallback_reason")
            wait_for(
                lambda: db.execute("SELECT count(*) FROM ai_call_logs").fetchone() == (5,),
                timeout=30,
            )
        finally:
            worker.stop(timeout=20)
    said = [e for e in logs if e["event"] == "store not ready; holding batches"]
    assert len(said) == 1
    assert db.execute("SELECT count(*) FROM ai_call_rejects").fetchone() == (0,)
    assert redis_client.xpending(settings.stream, settings.group)["pending"] == 0


def test_stop_while_waiting_for_the_writer_returns(settings, redis_client) -> None:
    broken = settings.model_copy(update={"database_url": "postgresql://127.0.0.1:1/nothing"})
    log_events(settings, 2)
    worker = Worker(broken)
    worker.start()
    try:
        wait_for(lambda: pending(redis_client, settings) == 2)
        stopped = threading.Event()
        threading.Thread(target=lambda: (worker.stop(timeout=30), stopped.set())).start()
        assert stopped.wait(40)
        assert pending(redis_client, settings) == 2
    finally:
        worker.stop(timeout=30)  # never leave a worker thread running past the test

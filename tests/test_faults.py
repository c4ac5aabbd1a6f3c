"""Nothing lost, nothing doubled: workers killed, Postgres and Redis stopped, for real.

Every test here does the fault to real processes — SIGKILL to ``ailedger worker``
processes, ``pg_ctl stop`` to a private Postgres, SIGKILL to a private Redis — and
then checks what a user would: every event is a row, once, nothing is left pending
in the stream, and the stream does not keep what was acknowledged.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

from ailedger.settings import Settings
from tests.faults import (
    Feeder,
    PostgresServer,
    RedisServer,
    TableCounts,
    WorkerProcess,
    fill_stream,
    group_state,
    heartbeats,
    kill_and_restart,
    private_postgres_cluster,
    realistic_payloads,
    row_count,
    stored_ids,
    table_counts,
    wait_for,
    worker_pool,
)

GROUP = "ailedger"
#: The campaign the suite runs; set lower while developing (AILEDGER_FAULT_EVENTS=20000).
KILL_CAMPAIGN_EVENTS = int(os.environ.get("AILEDGER_FAULT_EVENTS", "100000"))
#: Events logged per second while faults happen, so that they land mid-stream.
FEED_RATE = 4_000
OUTAGE_S = 10.0


def assert_exactly(database_url: str, sent: dict[str, bytes]) -> None:
    """Every event sent is one row: none missing, none twice, none dead-lettered."""
    counts = table_counts(database_url)
    assert counts == TableCounts(rows=len(sent), distinct_ids=len(sent), rejects=0)
    assert stored_ids(database_url) == set(sent)


def assert_drained(client: redis.Redis, stream: str) -> None:
    state = group_state(client, stream, GROUP)
    assert state is not None and (state.pending, state.lag) == (0, 0)


def acknowledged(client: redis.Redis, stream: str) -> int:
    for info in client.xinfo_groups(stream):
        if info["name"].decode() == GROUP:
            return int(info["entries-read"]) - int(info["pending"])
    return 0


def hold_outage(workers: list[WorkerProcess], seconds: float, what: str) -> None:
    """Let the outage last ``seconds``, failing at once if any worker process exits."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        assert all(w.alive for w in workers), f"a worker exited while {what} was down"
        time.sleep(0.2)


def wait_drained(client: redis.Redis, stream: str, workers: list[WorkerProcess]) -> None:
    def drained() -> bool:
        assert all(w.alive for w in workers), "a worker exited after the outage"
        state = group_state(client, stream, GROUP)
        return state is not None and state.drained

    wait_for(drained, timeout=120, what="stream drained after the outage")


def state_changes(worker: WorkerProcess, prefix: str) -> int:
    return sum(1 for r in worker.log_records() if str(r.get("event", "")).startswith(prefix))


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own with an fsynced append-only file: it survives a crash."""
    server = RedisServer(tmp_path / "redis-aof", persistent=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    """A Postgres cluster of this test's own, to stop and start."""
    with private_postgres_cluster() as server:
        yield server


# -- workers killed ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_workers_sigkilled_every_few_seconds_lose_and_double_nothing(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    sent = dict(realistic_payloads(KILL_CAMPAIGN_EVENTS, seed=11))
    feed_seconds = KILL_CAMPAIGN_EVENTS / FEED_RATE
    with worker_pool(
        3,
        redis_url=settings.redis_url,
        database_url=settings.database_url,
        stream=settings.stream,
        log_dir=tmp_path,
    ) as workers:
        campaign = kill_and_restart(
            workers,
            redis_url=settings.redis_url,
            stream=settings.stream,
            group=GROUP,
            payloads=list(sent.values()),
            feed_seconds=feed_seconds,
            kill_every=(1.5, 3.0),
            rng=random.Random(5),
            timeout=feed_seconds + 300,
        )
        # Acknowledged entries leave the stream while the workers run.
        wait_for(lambda: redis_client.xlen(settings.stream) == 0, timeout=30, what="trimmed")

        # A worker restarted by the last kill may still be starting; SIGTERM once it runs.
        def running() -> bool:
            beating = {b["pid"] for b in heartbeats(redis_client, settings.stream)}
            return {w.pid for w in workers} <= beating

        wait_for(running, timeout=30, what="every worker running")
        exit_codes = [worker.terminate() for worker in workers]

    # The faults really happened: workers died holding entries they had not acknowledged.
    assert campaign.kills >= int(feed_seconds / 3.0)
    assert campaign.orphaned > 0
    assert exit_codes == [0, 0, 0]  # the survivors stop cleanly on SIGTERM
    assert_exactly(settings.database_url, sent)
    assert_drained(redis_client, settings.stream)
    # Trimming went on during the campaign (the stream never held every event at once),
    # and never cut an entry a killed worker left pending: none is lost.
    assert campaign.peak_length < KILL_CAMPAIGN_EVENTS


def test_a_supervised_worker_sigkilled_is_replaced_and_nothing_is_lost(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """`ailedger worker --processes 2`: one child SIGKILLed mid-run; the supervisor starts
    another, the survivor claims what the dead one held, and every event is one row."""
    sent = dict(realistic_payloads(6_000, seed=53))
    payloads = list(sent.values())
    supervisor = WorkerProcess.for_servers(
        redis_url=settings.redis_url,
        database_url=settings.database_url,
        stream=settings.stream,
        log_dir=tmp_path,
        args=("--processes", "2"),
    )
    supervisor.start()

    def consuming() -> set[int]:
        """The supervisor's children, once there are two and each has a heartbeat."""
        assert supervisor.pid is not None and supervisor.alive
        children = {p.pid for p in psutil.Process(supervisor.pid).children()}
        beating = {b["pid"] for b in heartbeats(redis_client, settings.stream)}
        return children if len(children) == 2 and children <= beating else set()

    try:
        first = wait_for(consuming, timeout=60, what="two worker processes consuming")
        fill_stream(redis_client, settings.stream, payloads[:3_000])
        wait_for(lambda: row_count(settings.database_url) > 0, timeout=60, what="rows")
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        fill_stream(redis_client, settings.stream, payloads[3_000:])
        second = wait_for(
            lambda: (now := consuming()) and victim not in now and now,
            timeout=60,
            what="the killed worker replaced",
        )
        wait_for(lambda: row_count(settings.database_url) == len(sent), timeout=120, what="rows")
        wait_for(lambda: redis_client.xlen(settings.stream) == 0, timeout=30, what="trimmed")
    finally:
        exit_code = supervisor.terminate()
    assert exit_code == 0
    assert first - {victim} <= second  # the survivor kept going; only the dead one is new
    died = [r for r in supervisor.log_records() if r.get("event") == "worker process died"]
    assert [r["exitcode"] for r in died] == [-signal.SIGKILL]
    assert_exactly(settings.database_url, sent)
    assert_drained(redis_client, settings.stream)


def test_entries_of_a_dead_consumer_are_never_trimmed(
    settings: Settings, redis_client: redis.Redis, run_burst: Any, tmp_path: Path
) -> None:
    sent = dict(realistic_payloads(1_500, seed=41))
    payloads = list(sent.values())
    fill_stream(redis_client, settings.stream, payloads[:500])
    run_burst()
    assert redis_client.xlen(settings.stream) == 0  # stored and acknowledged: trimmed
    # A worker that read 500 entries and died before acknowledging them — what SIGKILL
    # leaves behind — while services go on logging.
    orphaned = fill_stream(redis_client, settings.stream, payloads[500:1_000])
    redis_client.xreadgroup(GROUP, "killed-worker", {settings.stream: ">"}, count=500)
    fill_stream(redis_client, settings.stream, payloads[1_000:])
    worker = WorkerProcess.for_servers(
        redis_url=settings.redis_url,
        database_url=settings.database_url,
        stream=settings.stream,
        log_dir=tmp_path,
        extra_env={"AILEDGER_CLAIM_IDLE_MS": "8000"},
    )
    worker.start()
    try:
        # The worker stores the newer entries and trims what it can; the dead one's stay.
        wait_for(lambda: row_count(settings.database_url) == 1_000, timeout=60, what="rows")
        time.sleep(1.0)  # a few housekeeping rounds (every 0.5 s) pass
        state = group_state(redis_client, settings.stream, GROUP)
        assert state is not None and state.pending == 500
        still_there = redis_client.xrange(settings.stream, orphaned[0], orphaned[-1])
        assert [sid for sid, _ in still_there] == orphaned
        # Once claimed and stored, they go too.
        wait_for(lambda: redis_client.xlen(settings.stream) == 0, timeout=60, what="trimmed")
    finally:
        assert worker.terminate() == 0
    assert_exactly(settings.database_url, sent)
    assert_drained(redis_client, settings.stream)


# -- Postgres away -----------------------------------------------------------------


@pytest.mark.slow
def test_postgres_stopped_for_ten_seconds_loses_nothing_and_no_worker_exits(
    private_postgres: PostgresServer, servers: Any, stream: str, tmp_path: Path
) -> None:
    database_url = private_postgres.database()
    client = redis.Redis.from_url(servers.redis_url)
    sent = dict(realistic_payloads(40_000, seed=21))
    # Services log 2,000 calls a second throughout, outage included.
    feeder = Feeder(servers.redis_url, stream, list(sent.values()), seconds=20).start()
    with worker_pool(
        2, redis_url=servers.redis_url, database_url=database_url, stream=stream, log_dir=tmp_path
    ) as workers:
        wait_for(
            lambda: sum(1 for b in heartbeats(client, stream) if b["batches"]) == 2,
            timeout=60,
            what="both workers storing",
        )
        private_postgres.stop()
        time.sleep(1.0)  # acknowledgements of batches committed just before the stop land
        before = acknowledged(client, stream)
        hold_outage(workers, OUTAGE_S - 1.0, "Postgres")
        assert acknowledged(client, stream) == before  # nothing acknowledged unstored
        assert group_state(client, stream, GROUP).pending > 0  # type: ignore[union-attr]
        private_postgres.start()
        feeder.join()
        wait_drained(client, stream, workers)
        assert [w.starts for w in workers] == [1, 1]
    assert_exactly(database_url, sent)
    # One warning per outage and per worker, not one per retry.
    for worker in workers:
        assert state_changes(worker, "postgres unavailable") <= 1
    client.close()


@pytest.mark.slow
def test_worker_started_while_postgres_is_down_waits_and_loses_nothing(
    private_postgres: PostgresServer, servers: Any, stream: str, tmp_path: Path
) -> None:
    """A worker (re)started during the outage — a deploy, a crash restart — stores it all."""
    database_url = private_postgres.database()
    client = redis.Redis.from_url(servers.redis_url)
    sent = dict(realistic_payloads(5_000, seed=22))
    fill_stream(client, stream, sent.values())
    private_postgres.stop()
    with worker_pool(
        1, redis_url=servers.redis_url, database_url=database_url, stream=stream, log_dir=tmp_path
    ) as workers:
        hold_outage(workers, OUTAGE_S, "Postgres")
        private_postgres.start()
        wait_drained(client, stream, workers)
    assert_exactly(database_url, sent)
    client.close()


# -- Redis away --------------------------------------------------------------------


@pytest.mark.slow
def test_redis_killed_and_restarted_mid_run_loses_and_doubles_nothing(
    persistent_redis: RedisServer, database_url: str, tmp_path: Path
) -> None:
    stream = "ailedger:events"
    client = redis.Redis.from_url(persistent_redis.url)
    sent = dict(realistic_payloads(30_000, seed=31))
    fill_stream(client, stream, sent.values())
    client.close()
    with worker_pool(
        2,
        redis_url=persistent_redis.url,
        database_url=database_url,
        stream=stream,
        log_dir=tmp_path,
        extra_env={"AILEDGER_BATCH_SIZE": "100"},
    ) as workers:
        wait_for(lambda: (row_count(database_url) or 0) >= 1_000, timeout=60, interval=0.02)
        persistent_redis.stop()  # SIGKILL: a crash; the fsynced AOF keeps every write
        hold_outage(workers, 5.0, "Redis")
        persistent_redis.start()
        client = redis.Redis.from_url(persistent_redis.url)
        state = group_state(client, stream, GROUP)
        assert state is not None and not state.drained  # the crash really hit mid-run
        wait_drained(client, stream, workers)
        client.close()
    assert_exactly(database_url, sent)
    for worker in workers:
        assert state_changes(worker, "redis unavailable") <= 1

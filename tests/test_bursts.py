"""Bursts: callers logging flat out lose nothing while the spool has room, and say so.

A burst faster than the sender goes to the disk spool (SPEC §6.2); ``flush()`` is True
only when everything logged before it reached Redis; the stats say where every event
is, and add up. The million-event bursts end as rows: ``ailedger worker --burst`` stores
each logged id exactly once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import redis

from ailedger.settings import Settings
from producer import AICallLogger, ProducerStats
from producer.backoff import Backoff
from producer.constants import EVENT_FIELD
from tests.faults import RedisServer, free_port, hung_redis, run_ailedger, stored, wait_for

THREADS = 4


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ailedger.producer")


def fast_backoff() -> Backoff:
    return Backoff(base=0.05, cap=0.5)


def accounted(stats: ProducerStats) -> int:
    """Where the logger says its events are: this must equal ``logged`` when it is quiet."""
    return stats.sent + stats.buffered + stats.spooled + stats.dropped + stats.in_flight


def log_flat_out(logger: AICallLogger, total: int, *, threads: int = THREADS) -> list[list[str]]:
    """``total`` calls from ``threads`` threads, as fast as they go; the ids each logged."""
    ids: list[list[str]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def work(mine: list[str], n: int) -> None:
        log, append = logger.log, mine.append
        start.wait()
        for i in range(n):
            append(log(task="material_classification", model="m", input_tokens=i, latency_ms=7))

    workers = [
        threading.Thread(target=work, args=(ids[t], total // threads)) for t in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return ids


def stream_events(client: redis.Redis, stream: str) -> Iterator[tuple[str, str]]:
    """(entry id, event id) of every entry in the stream, oldest first, read in pages."""
    after = "-"
    while page := client.xrange(stream, min=after, count=20_000):
        for entry_id, fields in page:
            yield entry_id.decode(), orjson.loads(fields[EVENT_FIELD])["id"]
        after = "(" + page[-1][0].decode()


def distinct_ids(client: redis.Redis, stream: str) -> tuple[int, set[str]]:
    """(entries, distinct event ids) in the stream."""
    entries, seen = 0, set()
    for _entry_id, event_id in stream_events(client, stream):
        entries += 1
        seen.add(event_id)
    return entries, seen


def store_all(settings: Settings, db: psycopg.Connection[Any]) -> tuple[int, set[str]]:
    """Run ``ailedger worker --burst`` as an operator would; (rows, distinct ids) stored."""
    ran = run_ailedger(settings, "worker", "--burst", "--processes", "2", timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    return stored(db)


@pytest.mark.timeout(600)
def test_a_million_events_from_four_threads_flat_out_are_a_million_rows(
    servers, settings, db, redis_client, tmp_path
) -> None:
    logger = AICallLogger(servers.redis_url, stream=settings.stream, spool_dir=tmp_path / "spool")
    ids = log_flat_out(logger, 1_000_000)
    during = logger.stats
    assert logger.flush(180), logger.stats
    stats = logger.stats
    logger.close()
    print(f"\n1,000,000 logged from {THREADS} threads: {during} at the end of logging")
    assert stats.dropped == 0 and stats.logged == 1_000_000
    assert stats.sent == 1_000_000 and accounted(stats) == 1_000_000
    assert redis_client.xlen(settings.stream) == 1_000_000
    logged = {event_id for part in ids for event_id in part}
    assert len(logged) == 1_000_000
    assert store_all(settings, db) == (1_000_000, logged)


def test_callers_that_outrun_the_sender_wait_for_room_instead_of_dropping(
    servers, settings, redis_client, tmp_path
) -> None:
    # A buffer of 2,000 events and room for 32 packed batches, and the sender held back
    # for the burst's first 0.3 s (its work lock taken before it starts, so no caller can
    # spill either): the buffer fills for certain, whatever the machine, and callers must
    # wait for room rather than drop what the spool has room for.
    logger = AICallLogger(
        servers.redis_url, stream=settings.stream, spool_dir=tmp_path / "spool", max_buffer=2_000
    )
    held = logger._sender.work_lock
    held.acquire()
    release = threading.Timer(0.3, held.release)
    release.start()
    ids = log_flat_out(logger, 200_000)
    release.join()
    during = logger.stats
    assert logger.flush(120), logger.stats
    logger.close()
    assert during.waited > 0, during  # the buffer did fill: the wait was put to the test
    assert during.dropped == 0 and logger.stats.dropped == 0
    assert logger.stats.sent == 200_000
    entries, seen = distinct_ids(redis_client, settings.stream)
    assert entries == 200_000 and seen == {event_id for part in ids for event_id in part}


def test_a_flush_that_says_true_mid_burst_means_everything_before_it_is_in_redis(
    servers, settings, redis_client, tmp_path
) -> None:
    # Callers pack batches and wait for room while three more threads flush again and
    # again (a burst is replayed from the spool once it ends, so each waits till then).
    # Stream entry ids grow with arrival, so the stream's last id read as a flush returns
    # True bounds the entry id of every event logged before that flush was called.
    stream = settings.stream
    logger = AICallLogger(
        servers.redis_url, stream=stream, spool_dir=tmp_path / "spool", max_buffer=2_000
    )
    ids: list[list[str]] = [[] for _ in range(THREADS)]
    done = threading.Event()
    verdicts: list[tuple[list[str], tuple[int, int]]] = []

    def flusher() -> None:
        wait_for(lambda: logger._logged >= 1_000, timeout=60, interval=0.001, what="the burst")
        while not done.is_set():
            before = [event_id for part in ids for event_id in part[:]]
            if logger.flush(60):
                last = redis_client.xinfo_stream(stream)["last-generated-id"].decode()
                verdicts.append((before, _entry(last)))

    def work(mine: list[str], n: int) -> None:
        for i in range(n):
            mine.append(logger.log(task="t", model="m", input_tokens=i))

    workers = [threading.Thread(target=work, args=(ids[t], 50_000)) for t in range(THREADS)]
    flushers = [threading.Thread(target=flusher) for _ in range(3)]
    for thread in [*workers, *flushers]:
        thread.start()
    for worker in workers:
        worker.join()
    done.set()
    for thread in flushers:
        thread.join()
    assert logger.flush(60), logger.stats
    logger.close()
    arrived = {
        event_id: _entry(entry_id) for entry_id, event_id in stream_events(redis_client, stream)
    }
    assert len(arrived) == 200_000
    assert any(0 < len(before) < 200_000 for before, _ in verdicts)  # one asked mid-burst
    for before, last in verdicts:
        late = [event_id for event_id in before if arrived[event_id] > last]
        assert not late, f"{len(late)} events logged before a flush that said True came after it"


def _entry(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)


@pytest.mark.timeout(600)
def test_redis_stopped_for_20s_mid_burst_every_event_is_one_row(
    settings, db, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "redis", persistent=True)
    server.start()
    logger = AICallLogger(
        server.url, stream="burst", spool_dir=tmp_path / "spool", backoff=fast_backoff
    )
    total = 1_000_000
    try:
        outage = threading.Thread(target=_stop_for, args=(server, logger, total // 4, 20.0))
        outage.start()
        ids = log_flat_out(logger, total)
        outage.join()
        assert logger.flush(120), logger.stats
        stats = logger.stats
        logger.close()
        client = redis.Redis.from_url(server.url)
        entries, seen = distinct_ids(client, "burst")
        client.close()
        rows = store_all(
            settings.model_copy(update={"redis_url": server.url, "stream": "burst"}), db
        )
    finally:
        server.stop()
    logged = {event_id for part in ids for event_id in part}
    print(f"\n{total:,} logged, Redis away 20 s: {stats}; {entries - len(seen)} duplicates")
    assert len(logged) == total and seen == logged
    assert stats.dropped == 0 and stats.spooled_total > 0 and stats.send_errors > 0
    assert accounted(stats) == total
    assert rows == (total, logged)  # a duplicate in the stream is still one row


def _stop_for(server: RedisServer, logger: AICallLogger, after: int, seconds: float) -> None:
    wait_for(lambda: logger.stats.logged >= after, timeout=60, interval=0.01, what="the burst")
    server.stop()
    time.sleep(seconds)
    server.start()


def test_the_counts_add_up_while_redis_is_away_and_after_it_is_back(
    servers, stream, tmp_path
) -> None:
    down = AICallLogger(
        f"redis://127.0.0.1:{free_port()}/0",
        stream=stream,
        spool_dir=tmp_path / "spool",
        backoff=fast_backoff,
    )
    for i in range(5_000):
        down.log(task="t", model="m", input_tokens=i)

    def quiet() -> ProducerStats | None:
        stats = down.stats
        return stats if stats.buffered == 0 and stats.in_flight == 0 else None

    stats = wait_for(quiet, timeout=20, interval=0.01, what="the sender to spool everything")
    assert (stats.logged, stats.spooled, stats.sent, stats.dropped) == (5_000, 5_000, 0, 0)
    assert down.flush(0.3) is False  # spooled is not sent
    down.close(timeout=0.2)

    up = AICallLogger(servers.redis_url, stream=stream, spool_dir=tmp_path / "spool")
    wait_for(lambda: up.stats.replayed == 5_000, timeout=20, what="the spool's replay")
    for i in range(1_000):
        up.log(task="t", model="m", input_tokens=i)
    assert up.flush(10)
    stats = up.stats
    # What it sent for the writer that is gone is replayed, not its own: sent is its 1,000.
    assert (stats.logged, stats.sent, stats.spooled, stats.replayed) == (1_000, 1_000, 0, 5_000)
    assert accounted(stats) == stats.logged
    up.close()


def test_a_flush_whose_window_dropped_an_event_is_false_and_the_next_one_true(
    servers, stream, redis_client
) -> None:
    # No disk: a full buffer then has nowhere to go. The sender is held back (its work
    # lock taken) so that the buffer fills for certain.
    logger = AICallLogger(servers.redis_url, stream=stream, max_buffer=100, max_spool_bytes=0)
    sender = logger._sender
    sender.work_lock.acquire()
    try:
        for i in range(150):
            logger.log(task="t", model="m", input_tokens=i)
    finally:
        sender.work_lock.release()
    assert logger.stats.dropped == 50
    assert logger.flush(10) is False  # 100 of its 150 reached Redis: not "all sent"
    assert redis_client.xlen(stream) == 100
    logger.log(task="t", model="m")
    assert logger.flush(10) is True  # nothing dropped since the last flush
    assert accounted(logger.stats) == 151
    assert logger.close() is False  # close() speaks for the logger's whole life


def test_a_burst_with_sdk_objects_and_odd_values_is_spooled_and_replayed_whole(
    servers, stream, redis_client, tmp_path
) -> None:
    class Usage:
        input_tokens, output_tokens = 12, 3
        cache_read_input_tokens = cache_creation_input_tokens = 0

    class Message:  # what the Anthropic SDK returns, duck-typed
        model, usage, type = "claude-3-5-haiku-20241022", Usage(), "message"

    logger = AICallLogger(
        f"redis://127.0.0.1:{free_port()}/0", stream=stream, spool_dir=tmp_path / "spool"
    )
    sent: dict[str, dict[str, Any]] = {}
    for i in range(3_000):  # plain ones, SDK objects, values orjson needs help with
        fields: dict[str, Any] = {"task": "t", "model": "m", "input_tokens": i}
        if i % 100 == 7:  # the SDK object says what it used
            del fields["input_tokens"]
            fields["response"] = Message()
        if i % 100 == 8:
            fields["request_data"] = {"api_key": "sk-" + "x" * 30, 1: "non-string key"}
        if i % 100 == 9:
            fields["error_message"] = ValueError("bad \udcff byte")
        sent[logger.log(**fields)] = fields
    wait_for(lambda: logger.stats.spooled == 3_000, timeout=20, what="the spill")
    logger.close(timeout=0.2)
    # What waits on disk is already redacted: the secret never reached the spool's files.
    on_disk = b"".join(path.read_bytes() for path in (tmp_path / "spool").iterdir())
    assert b"sk-" + b"x" * 30 not in on_disk and b"[REDACTED]" in on_disk
    again = AICallLogger(servers.redis_url, stream=stream, spool_dir=tmp_path / "spool")
    wait_for(lambda: again.stats.replayed == 3_000, timeout=20, what="the replay")
    again.close()
    got = {e["id"]: e for e in map(_event, redis_client.xrange(stream))}
    assert got.keys() == sent.keys()
    ids = list(sent)
    assert got[ids[7]]["input_tokens"] == 12 and got[ids[7]]["output_tokens"] == 3
    assert got[ids[8]]["request_data"]["api_key"] == "[REDACTED]"
    assert got[ids[9]]["error_message"] == "ValueError: bad \ufffd byte"
    assert got[ids[10]]["input_tokens"] == 10 and "timestamp" in got[ids[10]]


def _event(entry: tuple[bytes, dict[bytes, bytes]]) -> dict[str, Any]:
    return dict(orjson.loads(entry[1][EVENT_FIELD]))


def test_a_hung_redis_costs_no_event_of_a_burst(tmp_path) -> None:
    listener = hung_redis()
    try:
        logger = AICallLogger(
            f"redis://127.0.0.1:{listener.getsockname()[1]}/0",
            stream="hung",
            spool_dir=tmp_path / "spool",
            backoff=fast_backoff,
        )
        log_flat_out(logger, 200_000)
        assert logger.close(timeout=0.5) is False
        stats = logger.stats
    finally:
        listener.close()
    assert stats.dropped == 0 and stats.spooled == 200_000 and accounted(stats) == 200_000

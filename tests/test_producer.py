"""The producer's promises: fast, never raises, sends everything, flushes on demand."""

from __future__ import annotations

import os
import threading
import time
import uuid

import fakeredis
import orjson
import pytest
import redis

import producer
from producer import AICallLogger, track
from producer.constants import EVENT_FIELD
from tests.faults import free_port


@pytest.fixture(autouse=True)
def _own_spool_dir(tmp_path, monkeypatch) -> None:
    # Whatever a logger here spools goes to the test's own folder, never the shared default.
    monkeypatch.setenv("AILEDGER_SPOOL_DIR", str(tmp_path / "spool"))


def entries(client: redis.Redis, stream: str) -> list[dict]:
    return [orjson.loads(fields[EVENT_FIELD]) for _id, fields in client.xrange(stream)]


def test_logged_events_reach_the_stream(servers, stream, redis_client) -> None:
    logger = AICallLogger(servers.redis_url, stream=stream)
    ids = [logger.log(task="t", model="m", input_tokens=i) for i in range(1_000)]
    assert logger.flush(10)
    sent = entries(redis_client, stream)
    assert [e["id"] for e in sent] == ids
    assert sent[5]["input_tokens"] == 5
    assert logger.stats.sent == 1_000 and logger.stats.dropped == 0
    logger.close()


def test_threads_log_concurrently_without_loss(servers, stream, redis_client) -> None:
    logger = AICallLogger(servers.redis_url, stream=stream, batch_size=100)

    def work() -> None:
        for i in range(2_000):
            logger.log(task="t", model="m", latency_ms=i)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert logger.flush(10)
    assert redis_client.xlen(stream) == 8_000
    assert len({e["id"] for e in entries(redis_client, stream)}) == 8_000
    logger.close()


def test_flush_while_another_thread_starts_the_sender_waits_for_it(
    servers, stream, redis_client, monkeypatch
) -> None:
    """A sender slow to start (a loaded machine) is still starting, not gone: flush() waits."""

    class SlowToStart(threading.Thread):
        def start(self) -> None:
            time.sleep(0.3)
            super().start()

    logger = AICallLogger(servers.redis_url, stream=stream)
    first = threading.Thread(target=logger.log, kwargs={"task": "t", "model": "m"})
    monkeypatch.setattr(threading, "Thread", SlowToStart)  # every thread started from now on
    first.start()  # its log() starts the sender, which takes 0.3 s to run
    deadline = time.monotonic() + 5
    while logger._thread is None and time.monotonic() < deadline:
        time.sleep(0.001)
    assert logger._thread is not None and not logger._thread.is_alive()
    assert logger.flush(5)  # not False at once: the event is sent, then flush() says so
    first.join()
    assert redis_client.xlen(stream) == 1
    logger.close()


def test_the_sender_sends_full_batches_and_flush_does_not_wait_for_the_interval(
    servers, stream, redis_client
) -> None:
    # An interval far past flush()'s timeout: a sender that waited it out would fail flush().
    logger = AICallLogger(servers.redis_url, stream=stream, batch_size=50, flush_interval=60.0)
    logger.log(task="t", model="m")
    assert logger.flush(5)
    for i in range(120):
        logger.log(task="t", model="m", input_tokens=i)
        time.sleep(0.001)
    deadline = time.monotonic() + 10
    while redis_client.xlen(stream) < 101 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    # Two full batches went as they filled; the last 20 wait for a full batch or a flush.
    assert redis_client.xlen(stream) == 1 + 100
    assert logger.flush(5)
    assert [e["input_tokens"] for e in entries(redis_client, stream)[1:]] == list(range(120))
    logger.close()


def test_timestamp_is_when_the_call_started(servers, stream, redis_client) -> None:
    logger = AICallLogger(servers.redis_url, stream=stream)
    before = time.time()
    logger.log(task="t", model="m", latency_ms=4_000)
    assert logger.flush(5)
    (sent,) = entries(redis_client, stream)
    from datetime import datetime

    started = datetime.fromisoformat(sent["timestamp"]).timestamp()
    assert before - 4.5 < started < before - 3.5
    logger.close()


@pytest.mark.parametrize("spool", ["disk", "off"])
def test_redis_down_never_raises_nor_blocks_the_caller(tmp_path, spool) -> None:
    logger = AICallLogger(
        f"redis://127.0.0.1:{free_port()}/0",
        stream="x",
        max_buffer=10_000,
        spool_dir=tmp_path,
        max_spool_bytes=None if spool == "disk" else 0,
    )
    started = time.perf_counter()
    for _ in range(5_000):
        assert logger.log(task="t", model="m")
    elapsed = time.perf_counter() - started
    # A generous bound that only a blocking network call per event would break.
    assert elapsed < 2.0
    assert logger.flush(0.2) is False
    assert logger.close(timeout=0.5) is False
    if spool == "disk":  # kept for the next start
        assert logger.stats.spooled == 5_000 and logger.stats.dropped == 0
    else:  # held in memory while the process lived, lost at exit, and counted
        assert logger.stats.dropped == 5_000


def test_full_buffer_drops_and_counts_instead_of_growing() -> None:
    client = fakeredis.FakeRedis()
    # wait_when_full=0: a caller that finds the buffer full drops at once instead of
    # waiting for a sender to make room (tests/test_bursts.py has the waiting).
    logger = AICallLogger(client=client, stream="s", max_buffer=10, wait_when_full=0)
    logger._thread = threading.Thread()  # a sender that never runs: the buffer only fills
    for _ in range(25):
        logger.log(task="t", model="m")
    assert logger.stats.buffered == 10
    assert logger.stats.dropped == 15


def test_weird_fields_never_raise_and_the_call_is_still_sent() -> None:
    client = fakeredis.FakeRedis()
    logger = AICallLogger(client=client, stream="s")

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    logger.log(task="t", model="m", input_tokens=2**80, request_data={"when": object()})
    logger.log(task="t", model="m", request_data=Unprintable())
    assert logger.flush(5)
    sent = entries(client, "s")
    assert len(sent) == 2 and all(e["task"] == "t" for e in sent)
    logger.close()


def test_track_measures_latency_records_errors_and_reraises(servers, stream, redis_client) -> None:
    logger = AICallLogger(servers.redis_url, stream=stream)
    job = str(uuid.uuid4())
    with producer.job(job):
        with track(
            "product_enrichment_stage2", "claude-3-5-sonnet-20241022", logger=logger
        ) as call:
            time.sleep(0.02)
            call.record(input_tokens=10, output_tokens=5)
        with pytest.raises(TimeoutError), track("material_analysis", "llama", logger=logger):
            raise TimeoutError("provider took 30s")

    @track("image_validation", "claude-3-5-sonnet-20241022", logger=logger)
    def validate(image: str) -> dict:
        return {
            "model": "claude-3-5-sonnet-20241022",
            "usage": {"input_tokens": 3, "output_tokens": 1},
        }

    assert validate("img")["usage"]["input_tokens"] == 3
    assert logger.flush(5)
    ok, failed, decorated = entries(redis_client, stream)
    assert ok["latency_ms"] >= 20 and ok["job_id"] == job and ok["input_tokens"] == 10
    assert "action" not in ok
    assert failed["error_message"] == "TimeoutError: provider took 30s"
    assert failed["action"] == "fallback_to_rules" and failed["job_id"] == job
    assert decorated["task"] == "image_validation" and "job_id" not in decorated
    logger.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_its_own_sender(servers, stream, redis_client) -> None:
    logger = AICallLogger(servers.redis_url, stream=stream)
    logger.log(task="parent", model="m")
    assert logger.flush(5)
    pid = os.fork()
    if pid == 0:  # child: log and exit through the normal exit path (atexit flush)
        try:
            logger.log(task="child", model="m")
            ok = logger.flush(5)
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sorted(e["task"] for e in entries(redis_client, stream)) == ["child", "parent"]
    logger.close()


def test_log_call_uses_the_environment(servers, stream, redis_client, monkeypatch) -> None:
    monkeypatch.setenv("AILEDGER_REDIS_URL", servers.redis_url)
    monkeypatch.setenv("AILEDGER_STREAM", stream)
    monkeypatch.setattr(producer, "_default", None)
    event_id = producer.log_call(task="t", model="m")
    assert producer.default_logger().flush(5)
    assert [e["id"] for e in entries(redis_client, stream)] == [event_id]
    producer.default_logger().close()


def test_packed_xadd_reports_a_refusal_and_leaves_the_connection_usable(
    redis_client, stream
) -> None:
    from producer.wire import xadd_events

    xadd_events(redis_client, stream, [b'{"n":1}', b'{"n":2}'])
    assert [f[EVENT_FIELD] for _, f in redis_client.xrange(stream)] == [b'{"n":1}', b'{"n":2}']
    redis_client.set(f"{stream}:wrong", "a string, not a stream")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        xadd_events(redis_client, f"{stream}:wrong", [b"{}", b"{}"])
    assert redis_client.ping()
    xadd_events(redis_client, stream, [b'{"n":3}'])
    assert redis_client.xlen(stream) == 3


def test_a_lone_surrogate_in_a_message_does_not_lose_the_call() -> None:
    client = fakeredis.FakeRedis()
    logger = AICallLogger(client=client, stream="s")
    # An exception text carrying a file name decoded with surrogateescape.
    event_id = logger.log(task="t", model="m", input_tokens=3, error_message="bad \udcff name")
    assert logger.flush(5)
    (sent,) = entries(client, "s")
    assert sent["id"] == event_id and sent["input_tokens"] == 3
    assert sent["error_message"] == "bad \ufffd name"
    logger.close()

"""What a service pays per logged call: ``AICallLogger.log`` next to the ways it could do instead.

Each call is timed on its own with ``perf_counter_ns``. ``log()`` is measured while its
sender thread is really sending (events logged at a steady pace, the sender's CPU time
recorded to show it worked), with the sender idle, and with Redis refusing or never
answering. The baselines are what services do today — one synchronous INSERT per
call — and what a job queue would cost: one RQ ``enqueue`` per event.

The sender shares the GIL with the caller: a ``log()`` that gives the GIL up mid-call
(``uuid4`` reads ``os.urandom``, a system call made without the GIL) can wait for the
sender to hand it back, and the cyclic GC can run inside any call; that is what the
p99.9 and max show. ``bench.timing`` tells the two apart.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import cycle, islice
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
from psycopg.types.json import Jsonb
from rq import Queue

from bench.env import BenchEnv
from bench.timing import GcWatch, explain_slow, summarize, timed_calls
from producer import AICallLogger
from producer.scoring import confidence_score

Fields = dict[str, Any]
Result = dict[str, Any]

BUSY = "log(), sender sending"
ID_SUPPLIED = "log(), sender sending, id passed in (no uuid4)"
SENDER_CAPACITY = "sender capacity"
REFUSED = "log(), Redis refusing connections"
HUNG = "log(), Redis accepting, never answering"
FLAT_OUT = "log(), flat out, {threads} thread(s)"
BURST = "burst: {events:,} events flat out from {threads} threads"

#: The caller-cost targets (issue 12): p99 in µs per measurement.
CALLER_TARGETS = {
    BUSY: 10.0,
    REFUSED: 10.0,
    HUNG: 10.0,
    FLAT_OUT.format(threads=1): 20.0,
    FLAT_OUT.format(threads=4): 20.0,
}

_INSERT = """
INSERT INTO ai_call_logs (id, timestamp, job_id, task, model, provider, input_tokens,
    output_tokens, latency_ms, confidence_score, confidence_breakdown, action,
    fallback_reason, error_message)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


def _thread_cpu_ns(logger: AICallLogger) -> int:
    """CPU time the logger's sender thread has used so far (Linux), or -1."""
    thread = logger._thread
    if thread is None or thread.ident is None:
        return -1
    try:
        return time.clock_gettime_ns(time.pthread_getcpuclockid(thread.ident))
    except (AttributeError, OSError):
        return -1


def _workload(fields: Sequence[Fields], n: int) -> list[Fields]:
    return list(islice(cycle(fields), n))


def _noop(**fields: Any) -> str:
    return ""


def measure_floor(fields: Sequence[Fields], n: int, rate: float) -> Result:
    """An empty function taking the same keyword arguments, paced the same: the floor."""
    result = timed_calls(_noop, _workload(fields, n), rate=rate)
    result["name"] = "empty call, same kwargs (floor)"
    return result


def measure_log_busy(
    env: BenchEnv, fields: Sequence[Fields], n: int, rate: float, *, supply_ids: bool = False
) -> Result:
    """``log()`` at ``rate`` events/s while the sender XADDs them to Redis.

    With ``supply_ids`` each call passes an ``id`` made beforehand, so ``log()`` skips
    ``uuid4()``: the difference is what generating the id costs the caller.
    """
    stream = env.key(f"caller-busy-{supply_ids}")
    logger = AICallLogger(
        env.redis_url,
        stream=stream,
        max_buffer=max(100_000, 2 * n),
        spool_dir=_own_spool(env, stream),
    )
    try:
        warm = _workload(fields, 1_000)
        for event in warm:  # starts the sender and opens its connection
            logger.log(**event)
        logger.flush(30)
        sent_before = logger.stats.sent
        cpu_before = _thread_cpu_ns(logger)
        wall_before = time.perf_counter_ns()
        workload = _workload(fields, n)
        if supply_ids:
            workload = [dict(e, id=str(uuid4())) for e in workload]
            wall_before = time.perf_counter_ns()
        result = timed_calls(logger.log, workload, rate=rate)
        wall = time.perf_counter_ns() - wall_before
        cpu = _thread_cpu_ns(logger) - cpu_before
        sent_during = logger.stats.sent - sent_before
        all_sent = logger.flush(60)
        client = env.redis()
        try:
            stored = client.xlen(stream)
            client.delete(stream)
        finally:
            client.close()
    finally:
        logger.close(timeout=5)
    result.update(
        name=ID_SUPPLIED if supply_ids else BUSY,
        rate=rate,
        sent_during=sent_during,
        sender_cpu_share=(cpu / wall) if cpu >= 0 and wall else None,
        all_sent=all_sent and stored == len(warm) + n,
    )
    return result


def measure_sender_capacity(env: BenchEnv, fields: Sequence[Fields], n: int) -> Result:
    """How fast one process's sender drains: ``n`` events logged flat out, until all are sent.

    The buffer is made large enough never to pass half full, where the sender would
    start spilling to its disk spool: this is the direct path to Redis.
    """
    stream = env.key("caller-capacity")
    logger = AICallLogger(
        env.redis_url, stream=stream, max_buffer=4 * n, spool_dir=_own_spool(env, stream)
    )
    try:
        workload = _workload(fields, n)
        logger.log(**workload[0])
        logger.flush(30)
        began = time.perf_counter()
        for event in workload:
            logger.log(**event)
        logged = time.perf_counter() - began
        all_sent = logger.flush(120)
        seconds = time.perf_counter() - began
    finally:
        logger.close(timeout=5)
        client = env.redis()
        try:
            client.delete(stream)
        finally:
            client.close()
    return {
        "name": SENDER_CAPACITY,
        "events": n,
        "seconds": seconds,
        "events_per_s": n / seconds,
        "logging_seconds": logged,
        "all_sent": all_sent,
    }


def measure_log_idle(env: BenchEnv, fields: Sequence[Fields], n: int, rate: float) -> Result:
    """``log()`` with the sender asleep: the caller's own cost, nothing competing for the GIL."""
    stream = env.key("caller-idle")
    # A batch larger than the run and a long interval: the sender is not woken until close().
    # A buffer past half full would wake it to spill to disk: the buffer is made 4x the run.
    logger = AICallLogger(
        env.redis_url,
        stream=stream,
        batch_size=n + 10,
        flush_interval=3_600,
        max_buffer=4 * n,
        spool_dir=_own_spool(env, stream),
    )
    try:
        logger.log(**fields[0])  # starts the sender thread, outside the timing
        logger.flush(10)  # and lets it reach its wait: nothing wakes it until close()
        sent_before = logger.stats.sent
        result = timed_calls(logger.log, _workload(fields, n), rate=rate)
        sent_during = logger.stats.sent - sent_before
    finally:
        logger.close(timeout=60)
        client = env.redis()
        try:
            client.delete(stream)
        finally:
            client.close()
    result.update(name="log(), sender idle", rate=rate, sent_during=sent_during)
    return result


def _own_spool(env: BenchEnv, name: str) -> Path:
    """A spool folder for one logger: a later logger must not replay an earlier one's events."""
    return env.spool_dir() / name.rsplit(":", 1)[-1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _quiet_producer() -> Iterator[None]:
    # The producer rightly warns that Redis is unreachable; here that is the point.
    producer_log = logging.getLogger("ailedger.producer")
    level = producer_log.level
    producer_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        producer_log.setLevel(level)


def measure_log_redis_down(
    env: BenchEnv, fields: Sequence[Fields], n: int, rate: float, *, how: str
) -> Result:
    """``log()`` while Redis refuses connections (``refused``) or accepts and never answers."""
    listener: socket.socket | None = None
    if how == "refused":
        port = _free_port()  # nothing listens there: connect() fails at once
    else:
        # Connections complete in the kernel's backlog, commands are sent, no reply ever comes.
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(4096)
        port = int(listener.getsockname()[1])
    with _quiet_producer():
        logger = AICallLogger(
            f"redis://127.0.0.1:{port}/0",
            stream=env.key(f"caller-down-{how}"),
            max_buffer=max(100_000, 2 * n),
            spool_dir=_own_spool(env, f"down-{how}"),
        )
        try:
            logger.log(**fields[0])
            result = timed_calls(logger.log, _workload(fields, n), rate=rate)
            stats = logger.stats
        finally:
            logger.close(timeout=0.2)
            if listener is not None:
                listener.close()  # resets the stalled connection: the sender gives up now
            if logger._thread is not None:  # let it say so while its warnings are muted
                logger._thread.join(10)
    result.update(
        name=REFUSED if how == "refused" else HUNG,
        rate=rate,
        sent_during=stats.sent,
        dropped=stats.dropped,
        spooled=stats.spooled_total,
        send_errors=stats.send_errors,
    )
    return result


def _log_from_threads(
    logger: AICallLogger, fields: Sequence[Fields], n: int, threads: int
) -> tuple[array[int], array[int]]:
    """``n`` calls split over ``threads`` threads, flat out; each call's start and duration, ns."""
    per = n // threads
    starts = [array("q", bytes(8 * per)) for _ in range(threads)]
    durations = [array("q", bytes(8 * per)) for _ in range(threads)]
    start = threading.Barrier(threads)

    def work(began: array[int], took: array[int]) -> None:
        events, log, clock = _workload(fields, per), logger.log, time.perf_counter_ns
        start.wait()
        for i, event in enumerate(events):
            t0 = clock()
            log(**event)
            took[i] = clock() - t0
            began[i] = t0

    workers = [
        threading.Thread(target=work, args=pair) for pair in zip(starts, durations, strict=True)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    merged_starts, merged = array("q"), array("q")
    for began, took in zip(starts, durations, strict=True):
        merged_starts.extend(began)
        merged.extend(took)
    return merged_starts, merged


def _flat_out(
    env: BenchEnv, fields: Sequence[Fields], n: int, threads: int, key: str, *, warm: bool
) -> Result:
    """Log ``n`` events flat out from ``threads`` threads; then flush and count the stream."""
    stream = env.key(key)
    logger = AICallLogger(env.redis_url, stream=stream, spool_dir=_own_spool(env, stream))
    try:
        if warm:  # starts the sender and opens its connection, outside the timing
            logger.log(**fields[0])
            logger.flush(30)
        began = time.perf_counter()
        with GcWatch().watching() as gcs:
            starts, durations = _log_from_threads(logger, fields, n, threads)
        logging_s = time.perf_counter() - began
        all_sent = logger.flush(600)
        seconds = time.perf_counter() - began
        stats = logger.stats
    finally:
        logger.close(timeout=5)
        client = env.redis()
        try:
            stored = client.xlen(stream)
            client.delete(stream)
        finally:
            client.close()
    result = summarize(durations)
    result.update(explain_slow(starts, durations, gcs))
    result.update(
        events=len(durations),
        logging_seconds=logging_s,
        seconds=seconds,
        spooled=stats.spooled_total,
        dropped=stats.dropped,
        waited=stats.waited,
        stored=stored,
        all_sent=all_sent and stored == len(durations) + warm and stats.dropped == 0,
    )
    return result


def measure_log_flat_out(env: BenchEnv, fields: Sequence[Fields], n: int, threads: int) -> Result:
    """``log()`` called as fast as ``threads`` threads go, Redis up: a burst's caller cost."""
    result = _flat_out(env, fields, n, threads, f"caller-flat-{threads}", warm=True)
    result["name"] = FLAT_OUT.format(threads=threads)
    return result


def measure_burst(env: BenchEnv, fields: Sequence[Fields], n: int, threads: int = 4) -> Result:
    """``n`` events flat out from ``threads`` threads, Redis up: none dropped, all in the stream."""
    result = _flat_out(env, fields, n, threads, "burst", warm=False)
    result["name"] = BURST.format(events=result["events"], threads=threads)
    return result


def measure_insert(database_url: str, fields: Sequence[Fields], n: int) -> Result:
    """One synchronous INSERT per call into ``ai_call_logs``, as services do today."""
    events = _workload(fields, n)
    scores = [confidence_score(e.get("confidence_breakdown")) for e in events]
    with psycopg.connect(database_url, autocommit=True) as conn:

        def insert(**e: Any) -> None:
            breakdown = e.get("confidence_breakdown")
            conn.execute(
                _INSERT,
                (
                    uuid4(),
                    datetime.now(UTC),
                    e.get("job_id"),
                    e["task"],
                    e["model"],
                    e.get("provider"),
                    e.get("input_tokens"),
                    e.get("output_tokens"),
                    e.get("latency_ms"),
                    e.pop("_score"),
                    None if breakdown is None else Jsonb(breakdown),
                    e.get("action"),
                    e.get("fallback_reason"),
                    e.get("error_message"),
                ),
            )

        for event in _workload(fields, 50):  # connect, prepare the statement
            insert(**event, _score=None)
        result = timed_calls(
            insert,
            [dict(e, _score=s) for e, s in zip(events, scores, strict=True)],
            rate=None,
        )
    result["name"] = "sync INSERT per call (psycopg, autocommit)"
    return result


def measure_rq(env: BenchEnv, fields: Sequence[Fields], n: int) -> Result:
    """One RQ ``enqueue`` per event: a job queue instead of a stream."""
    client = env.redis()
    queue = Queue(env.key("rq"), connection=client)
    try:

        def enqueue(**e: Any) -> None:
            queue.enqueue("bench.jobs.noop", e)

        for event in _workload(fields, 50):
            enqueue(**event)
        result = timed_calls(enqueue, _workload(fields, n), rate=None)
    finally:
        queue.delete(delete_jobs=True)
        client.close()
    result["name"] = "RQ enqueue per event"
    return result


def run_caller(
    env: BenchEnv,
    fields: Sequence[Fields],
    *,
    log_events: int,
    baseline_events: int,
    rate: float,
) -> list[Result]:
    """Every caller-cost measurement, in one fixed order; results keyed by ``name``."""
    database_url = env.fresh_database()
    try:
        results = [
            measure_log_busy(env, fields, log_events, rate),
            measure_log_busy(env, fields, log_events, rate, supply_ids=True),
            measure_log_idle(env, fields, log_events, rate),
            measure_log_redis_down(env, fields, log_events, rate, how="refused"),
            measure_log_redis_down(env, fields, log_events, rate, how="stalled"),
            measure_insert(database_url, fields, baseline_events),
            measure_rq(env, fields, baseline_events),
            measure_floor(fields, log_events, rate),
            measure_sender_capacity(env, fields, log_events),
            measure_log_flat_out(env, fields, 4 * log_events, 1),
            measure_log_flat_out(env, fields, 4 * log_events, 4),
        ]
    finally:
        env.drop_database(database_url)
    for result in results:
        result["switch_interval_ms"] = sys.getswitchinterval() * 1000
    return results

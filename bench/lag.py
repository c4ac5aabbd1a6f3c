"""End-to-end lag: from ``log()`` in a service to the committed row, at a steady rate.

A service process (this one) logs the demo's events through the producer's
``AICallLogger`` at a fixed rate, paced every few milliseconds, while
``ailedger worker --processes N`` runs as in production (not in burst mode). Two
figures per event:

- *logged → transaction*: the row's ``created_at`` (the start of the transaction
  that stored it) minus its ``timestamp`` (the producer's clock when ``log()`` was
  called), for every row;
- *logged → visible*: for one event in ``PROBE_EVERY``, the time from ``log()``
  until a separate connection, polling every few milliseconds, sees the committed
  row. It includes the commit and the poll's resolution, so it is the figure a
  reader of the table would notice.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from bench.env import BenchEnv
from bench.events import logged_fields
from bench.throughput import GROUP
from producer.logger import AICallLogger

Result = dict[str, Any]

#: One event in this many is probed for "logged → visible".
PROBE_EVERY = 50
POLL_EVERY_S = 0.005
PACE_EVERY_S = 0.002

_LAGS = """
SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (
           ORDER BY EXTRACT(EPOCH FROM created_at - timestamp)),
       max(EXTRACT(EPOCH FROM created_at - timestamp)), count(*)
FROM ai_call_logs
"""


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


class _Prober(threading.Thread):
    """Sees each probed id's row appear; records when, against when it was logged."""

    def __init__(self, url: str) -> None:
        super().__init__(name="bench-lag-prober", daemon=True)
        self.url = url
        self.waiting: dict[str, float] = {}
        self.lags: list[float] = []
        self.lock = threading.Lock()
        self.done = threading.Event()

    def expect(self, event_id: str, logged: float) -> None:
        with self.lock:
            self.waiting[event_id] = logged

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.done.is_set() or self.waiting:
                with self.lock:
                    ids = list(self.waiting)
                if ids:
                    seen = conn.execute(
                        "SELECT id::text FROM ai_call_logs WHERE id = ANY(%s::uuid[])", (ids,)
                    ).fetchall()
                    now = time.monotonic()
                    with self.lock:
                        for (event_id,) in seen:
                            self.lags.append(now - self.waiting.pop(event_id))
                time.sleep(POLL_EVERY_S)


def run_lag(
    env: BenchEnv, *, rate: float = 5_000, seconds: float = 60, processes: int = 2
) -> Result:
    """Log ``rate`` events/s for ``seconds`` with ``processes`` workers running; the lags."""
    from bench.throughput import worker_command

    total = int(rate * seconds)
    events = logged_fields(total, seed=3)
    url = env.fresh_database()
    stream = env.key(f"lag-{time.monotonic_ns()}")
    child_env = dict(
        os.environ,
        AILEDGER_REDIS_URL=env.redis_url,
        AILEDGER_DATABASE_URL=url,
        AILEDGER_STREAM=stream,
        AILEDGER_GROUP=GROUP,
        AILEDGER_LOG_LEVEL="WARNING",
    )
    command = [c for c in worker_command(processes, 500) if c != "--burst"]
    proc = subprocess.Popen(command, env=child_env, stderr=subprocess.PIPE, text=True)
    prober = _Prober(url)
    logger = AICallLogger(env.redis_url, stream=stream, spool_dir=env.spool_dir())
    try:
        _wait_for_consumers(env, stream, processes, proc)
        prober.start()
        began = time.monotonic()
        for i, fields in enumerate(events):
            due = began + i / rate
            delay = due - time.monotonic()
            if delay > PACE_EVERY_S:
                time.sleep(delay)
            # Stamped now: the row's timestamp is when it was logged, not when the call began.
            event_id = logger.log(**fields, timestamp=datetime.now(UTC))
            if i % PROBE_EVERY == 0:
                prober.expect(event_id, time.monotonic())
        logging_took = time.monotonic() - began
        logger.flush(30)
        stored = _wait_for_rows(url, total, deadline_s=120)
        prober.done.set()
        prober.join(30)
    finally:
        logger.close()
        proc.send_signal(signal.SIGTERM)
        try:
            _out, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, stderr = proc.communicate()
        client = env.redis()
        client.delete(stream)
        client.close()
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(_LAGS).fetchone()
    env.drop_database(url)
    assert row is not None
    (p50, p99), worst, count = row[0] or (0.0, 0.0), row[1] or 0.0, int(row[2])
    probes = prober.lags
    return {
        "name": f"lag, {rate:,.0f} events/s for {seconds:g} s, {processes} workers",
        "events": total,
        "stored": stored,
        "rate": total / logging_took,
        "row_p50_s": float(p50),
        "row_p99_s": float(p99),
        "row_max_s": float(worst),
        "rows": count,
        "probes": len(probes),
        "probe_p50_s": statistics.median(probes) if probes else None,
        "probe_p99_s": _percentile(probes, 0.99) if probes else None,
        "probe_max_s": max(probes) if probes else None,
        "ok": stored == total,
        "stderr": (stderr or "").strip()[-2000:],
    }


def _wait_for_consumers(
    env: BenchEnv, stream: str, processes: int, proc: subprocess.Popen[str]
) -> None:
    from bench.throughput import _all_running

    if not _all_running(env, stream, processes, proc):
        raise RuntimeError(f"worker command exited {proc.returncode} before consuming")


def _wait_for_rows(url: str, total: int, *, deadline_s: float) -> int:
    end = time.monotonic() + deadline_s
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM ai_call_logs").fetchone()
            stored = int(row[0]) if row else 0
            if stored >= total or time.monotonic() > end:
                return stored
            time.sleep(0.1)

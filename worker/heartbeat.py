"""A worker's liveness: the heartbeat record it writes, and the health it reports there.

The record is the contract between workers, which write it every second under a
TTL key (``producer.constants.heartbeat_key``), and ``ailedger status``, the API and
Prometheus, which read it: one definition, :class:`Heartbeat`, for both sides.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

import orjson

from producer.backoff import Backoff
from worker.metrics import WorkerMetrics


@dataclass(slots=True)
class WorkerCounters:
    """What a worker has done since it started; written by the writer thread only."""

    batches: int = 0
    entries: int = 0
    inserted: int = 0
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """One consumer's heartbeat, as stored in Redis (JSON) and read back by status."""

    consumer: str
    pid: int
    host: str
    started_at: float
    beat_at: float
    batches: int = 0
    entries: int = 0
    inserted: int = 0
    rejected: int = 0
    claimed: int = 0
    #: Servers the worker cannot reach now ("postgres", "redis"); None when all answer.
    down: list[str] | None = None
    #: Why the worker is holding its batch, when the reason is not an outage but
    #: something a person must fix (e.g. "ai_call_logs is missing: run `ailedger migrate`").
    problem: str | None = None

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def decode(cls, raw: bytes | str) -> Heartbeat:
        """Read a heartbeat; fields an older or newer worker wrote differently are tolerated."""
        data: dict[str, Any] = orjson.loads(raw)
        known = {f.name for f in fields(cls)}
        now = time.time()
        data.setdefault("consumer", "")
        data.setdefault("pid", 0)
        data.setdefault("host", "")
        data.setdefault("started_at", now)
        data.setdefault("beat_at", now)
        return cls(**{k: v for k, v in data.items() if k in known})


class Health:
    """What the worker's threads have proven about the servers, safe to share between them.

    The reading loop and the writer thread each report only what they themselves
    saw; a change of state is logged once, by whoever saw it, not once per attempt.
    """

    def __init__(self, log: Any, metrics: WorkerMetrics) -> None:
        self.log = log
        self._metrics = metrics
        self._down: dict[str, str] = {}
        self._lock = threading.Lock()
        #: The last error a batch met: what a dead letter's reason cites.
        self.last_error: str | None = None
        #: Something a person must fix before batches can be stored (the schema).
        self.problem: str | None = None
        #: ``time.monotonic()`` when the first of the servers now down went down.
        self.down_since: float | None = None

    def went_down(self, server: str, exc: BaseException) -> None:
        """``server`` failed a request: count it, and log it if it was up."""
        self._metrics.backend_error(server)
        with self._lock:
            new = server not in self._down
            self._down[server] = str(exc)
            if self.down_since is None:
                self.down_since = time.monotonic()
        if new:
            self.log.warning(
                "server unavailable; retrying with backoff", server=server, error=str(exc)
            )

    def store_not_ready(self, exc: BaseException, advice: str) -> None:
        """Postgres answers but cannot take the batch as the schema stands: say so once."""
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        problem = f"{first_line}: {advice}"
        self._metrics.backend_error("postgres")
        with self._lock:
            new = self.problem != problem
            self.problem = problem
            self._down["postgres"] = problem
            if self.down_since is None:
                self.down_since = time.monotonic()
        if new:
            self.log.error("store not ready; holding batches", server="postgres", problem=problem)

    def recovered(self, server: str, backoff: Backoff) -> None:
        """``server`` just answered a real request: log its return once, reset the backoff."""
        with self._lock:
            was_down = self._down.pop(server, None) is not None
            if server == "postgres":
                self.problem = None
            if not self._down:
                self.down_since = None
        if was_down:
            self.log.info("server is back", server=server, attempts=backoff.attempts)
        backoff.reset()

    def down(self) -> list[str]:
        with self._lock:
            return sorted(self._down)

    def reasons(self) -> dict[str, str]:
        with self._lock:
            return dict(self._down)


def beat(
    *, consumer: str, started_at: float, counters: WorkerCounters, claimed: int, health: Health
) -> Heartbeat:
    """This process's heartbeat now."""
    return Heartbeat(
        consumer=consumer,
        pid=os.getpid(),
        host=socket.gethostname(),
        started_at=started_at,
        beat_at=time.time(),
        batches=counters.batches,
        entries=counters.entries,
        inserted=counters.inserted,
        rejected=counters.rejected,
        claimed=claimed,
        down=health.down() or None,
        problem=health.problem,
    )

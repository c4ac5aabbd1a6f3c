"""The stream's shards as workers and operations see them, and a worker that reads several.

A stream with one shard is the stream itself, read by one :class:`~worker.consumer.Worker`
exactly as ever. With more (a Redis Cluster, or ``AILEDGER_STREAM_SHARDS``), each shard is
a stream of its own with its own consumer group, dead letters and heartbeats, and a
:class:`ShardedWorker` runs one ``Worker`` per shard it is given (``AILEDGER_SHARDS=0,2``,
default all): every promise of a single stream — own backlog first, claims of idle entries,
acknowledge only after commit, burst drain — then holds per shard without new code. A
cluster cannot serve an ``XREADGROUP`` over keys in different slots in one call, and one
blocking read per shard in its own thread wastes no round trips on empty shards, where
polling them in turn would.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
import structlog

from producer.backoff import Backoff
from producer.connection import connect
from producer.constants import stream_shards
from producer.shards import shard_count
from worker.consumer import Worker, consumer_name
from worker.settings import WorkerSettings

log = structlog.get_logger("ailedger.worker")


def shard_keys(client: Any, settings: WorkerSettings) -> list[str]:
    """Every shard's stream key, shard 0 first (just ``settings.stream`` when unsharded)."""
    return stream_shards(settings.stream, shard_count(client, settings.stream_shards))


def per_shard(settings: WorkerSettings, keys: list[str]) -> list[WorkerSettings]:
    """``settings`` once per shard key, each naming that shard as its stream."""
    if keys == [settings.stream]:
        return [settings]
    return [settings.model_copy(update={"stream": key}) for key in keys]


def resolve_shards(settings: WorkerSettings) -> list[WorkerSettings]:
    """The settings of each shard this worker consumes; raises ``redis.RedisError`` if unknown.

    Redis is asked only when the count depends on it (not pinned, and maybe a cluster).
    """
    if settings.stream_shards is not None or settings.redis_cluster == "off":
        count = settings.stream_shards or 1
    else:
        client = connect(
            settings.redis_url, cluster=settings.redis_cluster, strict=True, connect_timeout=5
        )
        try:
            count = shard_count(client, None)
        finally:
            client.close()
    keys = stream_shards(settings.stream, count)
    return per_shard(settings, [keys[n] for n in settings.consumed_shards(count)])


class ShardedWorker:
    """Consumes the shards it is given: ``start()``/``stop(timeout)``/``join()``, or ``run()``."""

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        consumer: str | None = None,
        burst: bool = False,
        backoff: type[Backoff] = Backoff,
    ) -> None:
        self.settings = settings
        self.consumer = consumer
        self.burst = burst
        self.failure: str | None = None
        self.workers: list[Worker] = []
        self._new_backoff = backoff
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="ailedger-shards")
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        for worker in self.workers:
            worker.stop()
        if self._thread is not None and timeout is not None:
            self.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Find the shards, then consume them until stopped (or, in burst mode, drained)."""
        plan = self._plan()
        if plan is None:
            return
        if len(plan) == 1:
            worker = Worker(plan[0], consumer=self.consumer, burst=self.burst)
            self.workers = [worker]
            if self._stop.is_set():
                worker.stop()
            worker.run()
            self.failure = worker.failure
            return
        # One consumer name on every shard: status shows one worker, reading each shard.
        name = self.consumer or consumer_name()
        self.workers = [Worker(s, consumer=name, burst=self.burst) for s in plan]
        log.info("consuming shards", shards=[s.stream for s in plan], consumer=name)
        for worker in self.workers:
            if self._stop.is_set():
                worker.stop()
            worker.start()
        for worker in self.workers:
            while not worker.join(1.0):
                pass
        failures = [w.failure for w in self.workers if w.failure is not None]
        self.failure = failures[0] if failures else None

    def _plan(self) -> list[WorkerSettings] | None:
        """The shards to consume, asking Redis until it answers (a burst gives up in time)."""
        backoff = self._new_backoff()
        started = time.monotonic()
        warned = False
        while not self._stop.is_set():
            try:
                return resolve_shards(self.settings)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                deadline = self.settings.burst_deadline_s
                if self.burst and time.monotonic() - started > deadline:
                    self.failure = (
                        f"gave up after {deadline:g}s without a working server (redis: {exc})"
                    )
                    log.error("burst worker giving up", reason=self.failure)
                    return None
                if not warned:
                    log.warning("cannot reach Redis to find the stream's shards", error=str(exc))
                    warned = True
                self._stop.wait(backoff.next_delay())
        return None

"""The queue gauges Prometheus scrapes: read from Redis at scrape time, kept by no one.

Length, lag, pending, oldest pending age, dead letters and live workers come from
the same :func:`~ailedger.ops.status.queue_status` that ``ailedger status`` prints,
so they are exact and cost nothing between scrapes. The worker's own counters live
with the worker (``worker/metrics.py``); the CLI serves both on one port.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import redis
import structlog
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ailedger.ops.status import QueueStatus, queue_status
from producer.connection import connect
from worker.settings import WorkerSettings

log = structlog.get_logger("ailedger.metrics")


class QueueCollector(Collector):
    """Queue gauges read from Redis at each scrape (``ailedger_queue_up`` 0 when it cannot)."""

    def __init__(self, settings: WorkerSettings) -> None:
        self._settings = settings
        self._client: redis.Redis | None = None
        self._lock = threading.Lock()

    def describe(self) -> Iterable[Metric]:
        return []  # registering must not reach for Redis

    def collect(self) -> Iterable[Metric]:
        labels = ["stream", "group"]
        values = [self._settings.stream, self._settings.group]
        up = GaugeMetricFamily(
            "ailedger_queue_up", "1 if Redis answered the queue-depth check.", labels=labels
        )
        try:
            with self._lock:
                if self._client is None:
                    self._client = connect(
                        self._settings.redis_url, socket_timeout=2.0, connect_timeout=2.0
                    )
                status = queue_status(self._client, self._settings)
        except redis.RedisError as exc:
            log.warning("queue depth unavailable for /metrics", error=str(exc))
            self._client = None
            up.add_metric(values, 0)
            yield up
            return
        up.add_metric(values, 1)
        yield up
        # A sharded stream: one series per shard, told apart by a ``shard`` label.
        parts = [(values, status)]
        if status.shards:
            labels = [*labels, "shard"]
            parts = [([*values, str(i)], shard) for i, shard in enumerate(status.shards)]
        for name, documentation, value in _GAUGES:
            family = GaugeMetricFamily(name, documentation, labels=labels)
            for label_values, part in parts:
                family.add_metric(label_values, value(part))
            yield family


_GAUGES: tuple[tuple[str, str, Callable[[QueueStatus], float]], ...] = (
    ("ailedger_stream_length_entries", "Entries in the stream.", lambda s: s.length),
    ("ailedger_stream_lag_entries", "Entries never delivered to a worker.", lambda s: s.lag),
    (
        "ailedger_stream_pending_entries",
        "Entries delivered to a worker and not yet acknowledged.",
        lambda s: s.pending,
    ),
    (
        "ailedger_stream_oldest_pending_age_seconds",
        "Age of the oldest unacknowledged entry (0 when none).",
        lambda s: s.oldest_pending_age_s or 0.0,
    ),
    ("ailedger_dead_letter_entries", "Entries in the dead-letter stream.", lambda s: s.dead_letter),
    (
        "ailedger_workers_alive",
        "Consumers with a fresh heartbeat.",
        lambda s: sum(1 for c in s.consumers if c.alive),
    ),
)

"""Prometheus metrics: what workers count, and the queue depth read at scrape time.

A worker records each stored batch on a :class:`WorkerMetrics` (counters and
histograms). Whoever runs the workers may hand :func:`serve_metrics` more
collectors to serve on the same port: the CLI adds the queue gauges of
``ailedger/ops/prometheus.py``, which operations own.

Several worker processes (``ailedger worker --processes N``) share one endpoint:
:func:`multiprocess_metrics` points prometheus-client's multiprocess mode at a
fresh directory before the children start; each child's metrics live in files
there and the supervisor serves their sum, with the queue gauges, on one port.
Counters of a child that died keep counting in the sum, as a counter should.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from worker.settings import WorkerSettings

log = structlog.get_logger("ailedger.metrics")

#: The variable prometheus-client reads, at import, to keep metrics in shared files.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

BATCH_SIZE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000)
WRITE_SECONDS_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


class WorkerMetrics:
    """What a worker counts. Cheap to call: a few counter increments per batch."""

    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        self._stored = Counter(
            "ailedger_events_stored",
            "Events newly stored in ai_call_logs.",
            registry=registry,
        )
        self._duplicates = Counter(
            "ailedger_events_duplicate",
            "Events delivered again and already stored; not stored twice.",
            registry=registry,
        )
        self._rejected = Counter(
            "ailedger_events_rejected",
            "Entries that could not be stored; kept in ai_call_rejects with the reason.",
            registry=registry,
        )
        self._dead_lettered = Counter(
            "ailedger_events_dead_lettered",
            "Entries written to the dead-letter stream.",
            registry=registry,
        )
        self._claimed = Counter(
            "ailedger_entries_claimed",
            "Entries claimed from consumers that left them idle (a worker died mid-batch).",
            registry=registry,
        )
        self._backend_errors = Counter(
            "ailedger_backend_errors",
            "Failed attempts to reach Redis or Postgres (retried with backoff).",
            ["backend"],
            registry=registry,
        )
        self._batch_size = Histogram(
            "ailedger_batch_size_entries",
            "Entries per batch read from the stream.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self._write_seconds = Histogram(
            "ailedger_batch_write_seconds",
            "Time to write one batch to Postgres, commit included.",
            buckets=WRITE_SECONDS_BUCKETS,
            registry=registry,
        )

    def batch_stored(self, *, size: int, inserted: int, rejected: int, seconds: float) -> None:
        """A batch of ``size`` entries was committed: ``inserted`` new rows, ``rejected`` kept."""
        self._batch_size.observe(size)
        self._write_seconds.observe(seconds)
        self._stored.inc(inserted)
        self._rejected.inc(rejected)
        self._duplicates.inc(max(0, size - inserted - rejected))

    def dead_lettered(self, count: int) -> None:
        self._dead_lettered.inc(count)

    def claimed(self, count: int) -> None:
        self._claimed.inc(count)

    def backend_error(self, backend: str) -> None:
        """One failed attempt to reach ``backend`` ("redis" or "postgres")."""
        self._backend_errors.labels(backend=backend).inc()


@functools.cache
def worker_metrics() -> WorkerMetrics:
    """The process's metrics, registered once in prometheus-client's default registry."""
    return WorkerMetrics()


class _Forward(Collector):
    """Everything another registry holds, so one endpoint can serve it plus the queue."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        return self._registry.collect()


@dataclass(slots=True)
class MetricsServer:
    """A running ``/metrics`` endpoint; ``close()`` stops it."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def serve_metrics(
    port: int,
    *,
    settings: WorkerSettings,
    host: str | None = None,
    registry: CollectorRegistry | None = None,
    collectors: Sequence[Collector] = (),
) -> MetricsServer:
    """Serve ``registry`` (default: this process's metrics) and ``collectors`` on ``port``.

    Port 0 picks a free port (see ``MetricsServer.port``). The thread is a daemon:
    it never keeps a stopping worker alive.
    """
    served = CollectorRegistry(auto_describe=False)
    served.register(_Forward(registry if registry is not None else REGISTRY))
    for collector in collectors:
        served.register(collector)
    bind = host if host is not None else settings.metrics_host
    server, thread = start_http_server(port, addr=bind, registry=served)
    metrics_server = MetricsServer(server, thread)
    log.info("serving /metrics", host=bind, port=metrics_server.port)
    return metrics_server


@contextlib.contextmanager
def multiprocess_metrics(
    settings: WorkerSettings, port: int, collectors: Sequence[Collector] = ()
) -> Iterator[MetricsServer]:
    """For a supervisor of worker processes: enter BEFORE starting them, serve their sum.

    Sets ``PROMETHEUS_MULTIPROC_DIR`` to a fresh directory (children inherit it and
    keep their metrics there), serves every child's metrics plus ``collectors`` on
    ``port``, and on exit stops serving, restores the environment and removes the files.
    """
    directory = tempfile.mkdtemp(prefix="ailedger-metrics-")
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = directory
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    server: MetricsServer | None = None
    try:
        server = serve_metrics(port, settings=settings, registry=registry, collectors=collectors)
        yield server
    finally:
        if server is not None:
            server.close()
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(directory, ignore_errors=True)

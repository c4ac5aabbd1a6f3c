"""Prometheus: worker counters and histograms, queue gauges read at scrape time, one port for N."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from ailedger.ops.prometheus import QueueCollector
from producer.constants import EVENT_FIELD, dead_letter_stream
from worker.metrics import MULTIPROC_ENV, WorkerMetrics, multiprocess_metrics, serve_metrics


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_stored_batch_counts_new_rows_duplicates_and_rejects() -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    metrics.batch_stored(size=500, inserted=480, rejected=5, seconds=0.02)
    metrics.batch_stored(size=100, inserted=0, rejected=0, seconds=0.004)  # delivered again
    metrics.dead_lettered(5)
    metrics.claimed(100)
    metrics.backend_error("postgres")
    value = registry.get_sample_value
    assert value("ailedger_events_stored_total") == 480
    assert value("ailedger_events_duplicate_total") == 115
    assert value("ailedger_events_rejected_total") == 5
    assert value("ailedger_events_dead_lettered_total") == 5
    assert value("ailedger_entries_claimed_total") == 100
    assert value("ailedger_backend_errors_total", {"backend": "postgres"}) == 1
    assert value("ailedger_batch_size_entries_count") == 2
    assert value("ailedger_batch_size_entries_sum") == 600
    assert value("ailedger_batch_size_entries_bucket", {"le": "100.0"}) == 1
    assert value("ailedger_batch_write_seconds_sum") == pytest.approx(0.024)
    assert value("ailedger_batch_write_seconds_bucket", {"le": "0.005"}) == 1


def test_the_endpoint_serves_worker_metrics_and_live_queue_depth(settings, redis_client) -> None:
    registry = CollectorRegistry()
    WorkerMetrics(registry).batch_stored(size=3, inserted=3, rejected=0, seconds=0.01)
    for _ in range(7):
        redis_client.xadd(settings.stream, {EVENT_FIELD: b"{}"})
    redis_client.xadd(dead_letter_stream(settings.stream), {b"reason": b"bad"})
    server = serve_metrics(
        0,
        settings=settings,
        host="127.0.0.1",
        registry=registry,
        collectors=[QueueCollector(settings)],
    )
    try:
        labels = (("group", settings.group), ("stream", settings.stream))
        found = scrape(server.port)
        assert found[("ailedger_events_stored_total", ())] == 3
        assert found[("ailedger_queue_up", labels)] == 1
        assert found[("ailedger_stream_lag_entries", labels)] == 7
        assert found[("ailedger_stream_pending_entries", labels)] == 0
        assert found[("ailedger_dead_letter_entries", labels)] == 1
        # Read at scrape time: new entries show on the next scrape.
        redis_client.xgroup_create(settings.stream, settings.group, id="0")
        redis_client.xreadgroup(settings.group, "c", {settings.stream: ">"}, count=2)
        found = scrape(server.port)
        assert found[("ailedger_stream_lag_entries", labels)] == 5
        assert found[("ailedger_stream_pending_entries", labels)] == 2
        assert found[("ailedger_stream_oldest_pending_age_seconds", labels)] >= 0
    finally:
        server.close()


def test_unreachable_redis_reports_queue_down_not_an_error(settings) -> None:
    down = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    server = serve_metrics(
        0,
        settings=down,
        host="127.0.0.1",
        registry=CollectorRegistry(),
        collectors=[QueueCollector(down)],
    )
    try:
        found = scrape(server.port)
        assert found[("ailedger_queue_up", (("group", down.group), ("stream", down.stream)))] == 0
        assert not any(name == "ailedger_stream_lag_entries" for name, _ in found)
    finally:
        server.close()


CHILD = """
from worker.metrics import worker_metrics
metrics = worker_metrics()
metrics.batch_stored(size=10, inserted=9, rejected=1, seconds=0.05)
metrics.dead_lettered(1)
"""


def test_worker_processes_share_one_endpoint(settings) -> None:
    assert MULTIPROC_ENV not in os.environ
    with multiprocess_metrics(settings, 0, [QueueCollector(settings)]) as server:
        directory = os.environ[MULTIPROC_ENV]
        for _ in range(3):  # children inherit the directory, as spawned workers do
            subprocess.run([sys.executable, "-c", CHILD], check=True, timeout=60)
        found = scrape(server.port)
        assert found[("ailedger_events_stored_total", ())] == 27
        assert found[("ailedger_events_rejected_total", ())] == 3
        assert found[("ailedger_events_dead_lettered_total", ())] == 3
        assert found[("ailedger_batch_size_entries_count", ())] == 3
        labels = (("group", settings.group), ("stream", settings.stream))
        assert found[("ailedger_queue_up", labels)] == 1
    assert MULTIPROC_ENV not in os.environ and not os.path.exists(directory)

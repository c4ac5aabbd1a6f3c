"""The stream sharded over a real local Redis Cluster: 3 masters, 3 replicas, started here.

Events logged through the producer and through ``POST /api/ingest`` land on every shard,
two worker processes store each exactly once, and nothing is left pending on any shard.
A master killed mid-run (SIGKILL) is replaced by its replica and the run goes on; with
``AILEDGER_REDIS_WAIT_REPLICAS=1`` every event logged before the kill is stored.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from ailedger.api.app import create_app
from ailedger.settings import Settings
from producer import AICallLogger
from producer.constants import stream_shards
from tests.cluster import LocalCluster, local_cluster, wait_until_failover
from tests.faults import FAST_WORKER_ENV, cli_env, run_ailedger, stored, wait_for
from tests.ingest_helpers import FREE, TOKENS, bearer

pytestmark = pytest.mark.slow

#: Two shards per master (the default) on 3 masters.
SHARDS = 6


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    with local_cluster(tmp_path / "cluster") as running:
        yield running


@pytest.fixture
def on_cluster(settings: Settings, cluster: LocalCluster) -> Settings:
    """The test's settings (own database, own stream name) pointed at the cluster."""
    return settings.model_copy(update={"redis_url": cluster.url})


def pending_per_shard(cluster: LocalCluster, settings: Settings) -> dict[str, int]:
    with contextlib.closing(cluster.client()) as client:
        return {
            key: int(client.xpending(key, settings.group)["pending"])
            for key in stream_shards(settings.stream, SHARDS)
        }


def log_calls(settings: Settings, spool: Path, count: int) -> list[str]:
    logger = AICallLogger(redis_url=settings.redis_url, stream=settings.stream, spool_dir=spool)
    ids = [
        logger.log(task="material_classification", model="gpt-4o-mini", input_tokens=100 + i)
        for i in range(count)
    ]
    assert logger.flush(30)
    logger.close()
    return ids


def test_producer_and_ingest_events_are_stored_once_from_every_shard(
    on_cluster: Settings, cluster: LocalCluster, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    logged = log_calls(on_cluster, tmp_path / "spool", 3_000)
    app = create_app(on_cluster.model_copy(update={"ingest_tokens": SecretStr(TOKENS)}))
    ingested: list[str] = []
    with TestClient(app) as http:
        for _ in range(30):  # one request per batch of 10, as a service would send them
            events = [
                {"id": str(uuid.uuid4()), "task": "embedding", "model": "text-embedding-3-small"}
                for _ in range(10)
            ]
            answer = http.post("/api/ingest", json=events, headers=bearer(FREE))
            assert answer.status_code == 202, answer.text
            ingested += answer.json()["accepted"]
    with contextlib.closing(cluster.client()) as client:
        lengths = {key: client.xlen(key) for key in stream_shards(on_cluster.stream, SHARDS)}
        assert client.xlen(on_cluster.stream) == 0  # nothing went to the unsharded key
    # Every shard took a share; the shards live on different masters.
    assert all(lengths.values()), lengths
    assert sum(lengths.values()) == len(logged) + len(ingested)
    assert len({cluster.master_of(key) for key in lengths}) == 3

    status = run_ailedger(on_cluster, "status", "--json")
    before = orjson.loads(status.stdout)
    assert before["lag"] == len(logged) + len(ingested)
    assert [s["length"] for s in before["shards"]] == list(lengths.values())

    burst = run_ailedger(on_cluster, "worker", "--processes", "2", "--burst", timeout=120)
    assert burst.returncode == 0, burst.stderr[-3000:]
    count, ids = stored(db)
    assert count == len(logged) + len(ingested)  # none doubled
    assert ids == set(logged) | set(ingested)
    assert set(pending_per_shard(cluster, on_cluster).values()) == {0}
    after = orjson.loads(run_ailedger(on_cluster, "status", "--json").stdout)
    assert (after["lag"], after["pending"], after["dead_letter"]) == (0, 0, 0)
    assert len(after["shards"]) == SHARDS


def test_a_master_killed_mid_run_loses_nothing_when_the_producer_waits_for_a_replica(
    on_cluster: Settings,
    cluster: LocalCluster,
    db: psycopg.Connection[Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AILEDGER_REDIS_WAIT_REPLICAS", "1")
    monkeypatch.setenv("AILEDGER_REDIS_WAIT_TIMEOUT_MS", "300")
    # The URL's node is the first contact of every new client: kill another master.
    keys = stream_shards(on_cluster.stream, SHARDS)
    victim = next(p for p in (cluster.master_of(k) for k in keys) if p != cluster.ports[0])
    workers = subprocess.Popen(
        [sys.executable, "-m", "ailedger.cli", "worker", "--processes", "2"],
        env={**cli_env(on_cluster), **FAST_WORKER_ENV},
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "workers.log").open("wb"),
    )
    logger = AICallLogger(
        redis_url=on_cluster.redis_url, stream=on_cluster.stream, spool_dir=tmp_path / "spool"
    )
    logged: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            logged.extend(logger.log(task="t", model="gpt-4o-mini") for _ in range(20))
            time.sleep(0.01)

    sender = threading.Thread(target=traffic, name="traffic")
    try:
        sender.start()
        wait_for(lambda: len(logged) >= 4_000, timeout=30, what="traffic before the kill")
        assert logger.flush(30)
        before_kill = list(logged)
        cluster.kill(victim)
        took = wait_until_failover(cluster, victim)
        cluster.restart(victim)  # back as the new master's replica: WAIT 1 succeeds again
        wait_for(lambda: len(logged) >= len(before_kill) + 4_000, timeout=30, what="more traffic")
        stop.set()
        sender.join()
        assert logger.flush(60), logger.stats
        logger.close()
        wait_for(lambda: stored(db)[0] >= len(set(logged)), timeout=60, what="every row stored")
    finally:
        stop.set()
        workers.terminate()
        workers.wait(timeout=60)
        errors = (tmp_path / "workers.log").read_text()[-3000:]
    assert workers.returncode == 0, errors
    count, ids = stored(db)
    assert set(before_kill) <= ids  # acknowledged before the kill: stored
    assert ids == set(logged) and count == len(set(logged))  # everything once, nothing else
    assert set(pending_per_shard(cluster, on_cluster).values()) == {0}
    print(f"failover took {took:.1f}s; {len(logged)} events, {logger.stats}")

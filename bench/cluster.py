"""Figures for docs/scaling.md: Redis memory per pending event, and what a failover loses.

    python -m bench.cluster memory [--events 1000000]
    python -m bench.cluster failover [--runs 3]

``memory`` fills a stream on a private ``redis-server`` (a free port; never the machine's
Redis) with the demo's realistic events, byte for byte what producers XADD, reads
``MEMORY USAGE`` of the stream and ``used_memory`` before and after, then lets a consumer
group take every entry (all pending) and reads again.

``failover`` starts a local 3+3 Redis Cluster, XADDs batches flat out (the producer's own
``xadd_events``, no ``WAIT``) to a shard of one master, SIGKILLs that master mid-run, and
counts the events whose batch the master had acknowledged that the promoted replica does
not have: what Redis's asynchronous replication loses at that moment.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import orjson
import redis

from bench.events import fill_stream, stream_payloads
from producer.connection import connect
from producer.constants import stream_shards
from producer.wire import xadd_events
from tests.cluster import local_cluster, wait_until_failover
from tests.faults import free_port, redis_server_binary, wait_for


def measure_memory(events: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        server = subprocess.Popen(
            [
                *(redis_server_binary(), "--port", str(port), "--dir", folder),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            client = redis.Redis(port=port)
            wait_for(lambda: _ping(client), timeout=15, what="redis-server to start")
            base = int(client.info("memory")["used_memory"])
            payloads = stream_payloads(min(events, 100_000))
            sizes = [len(p) for p in payloads]
            for start in range(0, events, len(payloads)):
                fill_stream(client, "s", payloads[: min(len(payloads), events - start)])
            filled = int(client.info("memory")["used_memory"])
            usage = int(client.memory_usage("s", samples=0) or 0)
            client.xgroup_create("s", "g", id="0")
            while client.xreadgroup("g", "c", {"s": ">"}, count=10_000):
                pass
            pending = int(client.info("memory")["used_memory"])
            pending_usage = int(client.memory_usage("s", samples=0) or 0)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {
        "events": events,
        "mean_payload_bytes": sum(sizes) / len(sizes),
        "stream_memory_usage_mb": usage / 1e6,
        "used_memory_delta_mb": (filled - base) / 1e6,
        "bytes_per_event": (filled - base) / events,
        "all_pending_used_memory_delta_mb": (pending - base) / 1e6,
        "all_pending_memory_usage_mb": pending_usage / 1e6,
        "all_pending_bytes_per_event": (pending - base) / events,
    }


def _ping(client: redis.Redis) -> bool:
    with contextlib.suppress(redis.RedisError):
        return bool(client.ping())
    return False


def measure_failover_loss(runs: int, *, batch: int = 500) -> list[dict[str, float]]:
    """Batches XADDed flat out to a shard of one master, which is SIGKILLed mid-batch."""
    results = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as folder, local_cluster(Path(folder)) as cluster:
            keys = stream_shards("bench:events", 6)
            key = next(k for k in keys if cluster.master_of(k) != cluster.ports[0])
            victim = cluster.master_of(key)
            client = connect(cluster.url)
            acknowledged: list[str] = []

            def write(
                client: redis.Redis = client, key: str = key, acknowledged: list[str] = acknowledged
            ) -> None:
                n = 0
                while True:
                    ids = [f"e{n + i}" for i in range(batch)]
                    n += batch
                    payloads = [orjson.dumps({"id": i, "task": "t", "model": "m"}) for i in ids]
                    try:
                        xadd_events(client, key, payloads)
                    except Exception:
                        return  # the master is gone: what it acknowledged is counted
                    acknowledged.extend(ids)

            thread = threading.Thread(target=write)
            thread.start()
            time.sleep(2)
            cluster.kill(victim)
            thread.join()
            took = wait_until_failover(cluster, victim)
            with contextlib.closing(cluster.client()) as reader:
                kept = {orjson.loads(f[b"e"])["id"] for _sid, f in reader.xrange(key)}
            results.append(
                {
                    "acknowledged": len(acknowledged),
                    "lost": len(set(acknowledged) - kept),
                    "failover_s": round(took, 2),
                }
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster")
    parser.add_argument("what", choices=["memory", "failover"])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.what == "memory":
        print(orjson.dumps(measure_memory(args.events), option=orjson.OPT_INDENT_2).decode())
    else:
        for result in measure_failover_loss(args.runs):
            print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()

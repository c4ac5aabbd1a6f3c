"""Container health checks: is a worker (or a jobs worker) alive on this host?

A worker refreshes a TTL heartbeat key every second (``<stream>:heartbeat:<consumer>``,
the consumer name starting with the host name); RQ keeps a registry of its workers
with their host names. ``ailedger worker --check`` and ``ailedger jobs --check`` turn
these into an exit code for a Docker ``healthcheck``.
"""

from __future__ import annotations

import socket

import redis

from producer.constants import heartbeat_key, maintenance_queue
from producer.shards import ShardedStream


def workers_alive_here(client: redis.Redis, stream: str, host: str | None = None) -> int:
    """How many workers on ``host`` (default: this one) have a live heartbeat on ``stream``.

    A worker reading a sharded stream beats on each shard, under one consumer name.
    """
    names = set()
    for key in ShardedStream.for_client(client, stream).keys:
        pattern = heartbeat_key(key, f"{host or socket.gethostname()}-*")
        for found in client.scan_iter(match=pattern, count=1000):
            names.add(bytes(found).rpartition(b":heartbeat:")[2])
    return len(names)


def jobs_workers_alive_here(client: redis.Redis, stream: str, host: str | None = None) -> int:
    """How many RQ workers on ``host`` (default: this one) serve the stream's maintenance queue."""
    from rq import Queue, Worker

    queue = Queue(maintenance_queue(stream), connection=client)
    here = host or socket.gethostname()
    return sum(1 for w in Worker.all(queue=queue) if w.hostname == here)

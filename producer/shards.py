"""How many shards the stream has, and which one the next batch goes to.

One shard (the default on a single Redis) is the stream itself, ``ailedger:events``.
On a Redis Cluster the default is two shards per master seen at start, so that every
master takes a share of the writes; ``AILEDGER_STREAM_SHARDS`` pins the count, and
must be pinned before masters are removed (workers read the shards the count names).
Key names come from :func:`producer.constants.stream_shards`.
"""

from __future__ import annotations

import os
import zlib
from typing import Any

from producer.connection import is_cluster
from producer.constants import stream_shards

#: Shards per cluster master when ``AILEDGER_STREAM_SHARDS`` is not set.
SHARDS_PER_MASTER = 2


def configured_shards(value: str | int | None = None) -> int | None:
    """The shard count set (``value``, else ``AILEDGER_STREAM_SHARDS``); None when not set."""
    raw = value if value is not None else os.environ.get("AILEDGER_STREAM_SHARDS")
    if raw is None or str(raw).strip() == "":
        return None
    try:
        count = int(raw)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"AILEDGER_STREAM_SHARDS={raw!r} is not a shard count; use 1 or more")
    return count


def shard_count(client: Any, configured: int | None = None) -> int:
    """``configured``, else 1 on a single Redis, else two per master of the cluster."""
    if configured is not None:
        return configured
    if is_cluster(client):
        return SHARDS_PER_MASTER * max(1, len(client.get_primaries()))
    return 1


class ShardedStream:
    """The keys of a stream's shards, handed out round robin, one per batch."""

    __slots__ = ("_next", "keys")

    def __init__(self, stream: str, shards: int) -> None:
        self.keys = stream_shards(stream, shards)
        self._next = 0

    @classmethod
    def for_client(cls, client: Any, stream: str, configured: int | None = None) -> ShardedStream:
        return cls(stream, shard_count(client, configured or configured_shards()))

    def key_for(self, payload: bytes) -> str:
        """A shard picked by a hash of ``payload``: spreads where no sender keeps a turn."""
        return self.keys[zlib.crc32(payload) % len(self.keys)]

    def next_key(self) -> str:
        """The shard the next batch is sent to (the stream itself when there is one)."""
        key = self.keys[self._next]
        self._next = (self._next + 1) % len(self.keys)
        return key


def wait_replicas() -> tuple[int, int]:
    """``(replicas, timeout_ms)`` each batch waits for (``AILEDGER_REDIS_WAIT_REPLICAS``).

    0 replicas (the default): a batch counts as sent once its master has it. With 1,
    a batch is sent only once a replica has it too, so a master's crash cannot lose it
    (``AILEDGER_REDIS_WAIT_TIMEOUT_MS``, default 1000, bounds the wait).
    """
    replicas = int(os.environ.get("AILEDGER_REDIS_WAIT_REPLICAS") or 0)
    timeout_ms = int(os.environ.get("AILEDGER_REDIS_WAIT_TIMEOUT_MS") or 1000)
    return max(0, replicas), max(1, timeout_ms)

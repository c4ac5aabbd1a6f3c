"""Names shared by producers and workers: stream keys, group names, wire fields.

Every Redis key ailedger touches is derived here, so that producer, worker, CLI
and tests agree on one spelling.
"""

from __future__ import annotations

DEFAULT_STREAM = "ailedger:events"
DEFAULT_GROUP = "ailedger"

#: The single field of a stream entry: the event as one orjson-encoded object.
EVENT_FIELD = b"e"

#: Wire format version, stored alongside the event so that workers can tell
#: old producers from new ones after the format changes.
VERSION_FIELD = b"v"
WIRE_VERSION = b"1"


def dead_letter_stream(stream: str) -> str:
    """The stream that keeps entries which could not be stored, with their reason."""
    return f"{stream}:dead"


def heartbeat_key(stream: str, consumer: str) -> str:
    """The TTL key a live consumer refreshes, with its counters."""
    return f"{stream}:heartbeat:{consumer}"


def heartbeat_pattern(stream: str) -> str:
    return f"{stream}:heartbeat:*"


def maintenance_queue(stream: str) -> str:
    """The RQ queue for the maintenance jobs (re-pricing) of the deployment ``stream`` names.

    Not the event path. One queue per deployment: a job runs on that deployment's jobs
    worker, against the database of that worker's own settings.
    """
    return f"{stream}:maintenance"


def shard_stream(stream: str, shard: int, shards: int) -> str:
    """The key of shard ``shard`` (of ``shards``) of ``stream``; the stream itself when unsharded.

    Each shard's number is its own hash tag (``ailedger:events:{0}``, ``…:{1}``), so the
    shards land on different slots of a Redis Cluster, and everything derived from a
    shard's key — its dead letters, its heartbeats — stays in that shard's slot.
    """
    if shards == 1:
        return stream
    return f"{stream}:{{{shard}}}"


def stream_shards(stream: str, shards: int) -> list[str]:
    """The keys of every shard of ``stream``, shard 0 first."""
    return [shard_stream(stream, shard, shards) for shard in range(shards)]

"""Keeping the stream small: trim what every group acknowledged, drop departed consumers.

Trimming uses XTRIM MINID with a bound computed from every group on the stream:
the oldest entry a group still has pending, or the first entry it has not been
given yet. Everything below that bound was delivered to and acknowledged by
every group, so it can go; nothing unacknowledged ever does.
"""

from __future__ import annotations

from typing import Any

import redis

from producer.constants import heartbeat_key


def _successor(stream_id: str) -> str:
    ms, _, seq = stream_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def _older(a: str, b: str) -> bool:
    ams, _, aseq = a.partition("-")
    bms, _, bseq = b.partition("-")
    return (int(ams), int(aseq or 0)) < (int(bms), int(bseq or 0))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def trim_bound(client: redis.Redis, stream: str) -> str | None:
    """The lowest id some group still needs; None if no group reads the stream."""
    bound: str | None = None
    for group in client.xinfo_groups(stream):
        name = _text(group["name"])
        needed = _successor(_text(group["last-delivered-id"]))
        if int(group["pending"]):
            # Another worker may acknowledge between XINFO and XPENDING: then the
            # summary has no oldest entry, and nothing pending holds the bound back.
            summary = client.xpending(stream, name)
            if summary.get("min") is not None:
                oldest = _text(summary["min"])
                if _older(oldest, needed):
                    needed = oldest
        if bound is None or _older(needed, bound):
            bound = needed
    return bound


def trim_acknowledged(client: redis.Redis, stream: str) -> int:
    """Remove entries every group has acknowledged; returns how many went."""
    try:
        bound = trim_bound(client, stream)
    except redis.ResponseError:
        return 0  # no such stream yet
    if bound is None:
        return 0  # nobody consumes it: trimming would lose events no one has read
    return int(client.xtrim(stream, minid=bound, approximate=False))


def remove_departed_consumers(
    client: redis.Redis, stream: str, group: str, *, idle_ms: int
) -> list[str]:
    """Delete consumers that own nothing, have no heartbeat and were idle for ``idle_ms``.

    A consumer removed by mistake loses nothing (it owned no entries) and comes
    back by itself on its next read.
    """
    removed = []
    for consumer in client.xinfo_consumers(stream, group):
        name = _text(consumer["name"])
        if int(consumer["pending"]) or int(consumer["idle"]) < idle_ms:
            continue
        if client.exists(heartbeat_key(stream, name)):
            continue
        client.xgroup_delconsumer(stream, group, name)
        removed.append(name)
    return removed

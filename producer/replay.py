"""Sending what a spool holds: the next batch from its head, and a whole folder.

The sender replays its own spool batch by batch with :func:`head_batch`;
``ailedger spool replay DIR`` sends what producers that are gone left in a folder
with :func:`replay_spool`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from producer.connection import connect
from producer.shards import ShardedStream
from producer.spool import DiskSpool, Spool
from producer.wire import encode_spilled, is_spilled, xadd_events


def head_batch(
    spool: Spool,
    limit: int,
    *,
    max_payload_bytes: int,
    encode: Callable[[bytes], list[bytes]] | None = None,
) -> tuple[list[bytes], int]:
    """``(payloads, records)``: what to send next from the spool's head, and how many
    records to ``consume`` once Redis has it.

    Encoded events come ``limit`` at a time; a spilled batch (a burst's raw fields) comes
    alone, encoded now (by ``encode`` if given). Its payloads may be empty (a batch that
    cannot be read): consume it all the same.
    """
    records = spool.peek(limit)
    if not records:
        return [], 0
    if is_spilled(records[0]):
        if encode is not None:
            return encode(records[0]), 1
        return encode_spilled(records[0], max_payload_bytes=max_payload_bytes), 1
    count = next((i for i, r in enumerate(records) if is_spilled(r)), len(records))
    return records[:count], count


def replay_spool(
    folder: str | os.PathLike[str],
    redis_url: str,
    stream: str | None = None,
    *,
    batch_size: int = 500,
    max_payload_bytes: int = 16_384,
) -> int:
    """Send what writers that are gone left in ``folder``, oldest first; returns how many.

    Each segment goes to the stream it was written for; with ``stream``, only that
    stream's segments are sent. Segments of live writers are left to them. Raises
    ``redis.RedisError`` if Redis fails midway: what was not sent stays on disk.
    Spilled batches are redacted and capped at ``max_payload_bytes`` as they are sent.
    """
    spool = DiskSpool(folder, stream=stream)
    client = connect(redis_url, strict=True)
    shards: dict[str, ShardedStream] = {}  # a stream's shard keys, spread over as logged
    sent = 0
    try:
        spool.adopt()
        while True:
            batch, records = head_batch(spool, batch_size, max_payload_bytes=max_payload_bytes)
            if not records:
                break
            head = spool.head_stream or ""
            if head not in shards:
                shards[head] = ShardedStream.for_client(client, head)
            xadd_events(client, shards[head].next_key(), batch)
            spool.consume(records)
            sent += len(batch)
    finally:
        spool.close()
        client.close()
    return sent

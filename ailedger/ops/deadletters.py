"""The dead letters: entries that could not be stored, kept with their reason.

Each lives twice: in the ``ai_call_rejects`` table (the record of truth, with raw
payload, reason, delivery count, first and last seen) and in the dead-letter
stream next to the main one (for tools that watch Redis). Replaying puts the raw
payload back on the main stream once the cause is fixed; a replayed entry that is
still bad comes back as a new reject with a fresh reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
import redis

from producer.constants import EVENT_FIELD, VERSION_FIELD, WIRE_VERSION, dead_letter_stream
from producer.shards import ShardedStream


@dataclass(frozen=True, slots=True)
class DeadLetter:
    stream_id: str
    event_id: str | None
    reason: str
    delivery_count: int
    first_seen: datetime
    last_seen: datetime
    replayed_at: datetime | None
    raw: bytes


_COLUMNS = "stream_id, event_id, reason, delivery_count, first_seen, last_seen, replayed_at, raw"


def list_dead_letters(
    conn: psycopg.Connection[Any], *, limit: int = 50, include_replayed: bool = False
) -> list[DeadLetter]:
    """Most recent first."""
    where = "" if include_replayed else "WHERE replayed_at IS NULL"
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM ai_call_rejects {where} ORDER BY last_seen DESC LIMIT %s",
        (limit,),
    ).fetchall()
    return [
        DeadLetter(
            stream_id=row[0],
            event_id=row[1],
            reason=row[2],
            delivery_count=row[3],
            first_seen=row[4],
            last_seen=row[5],
            replayed_at=row[6],
            raw=bytes(row[7]),
        )
        for row in rows
    ]


def replay(
    conn: psycopg.Connection[Any],
    client: redis.Redis,
    stream: str,
    *,
    stream_ids: list[str] | None = None,
) -> int:
    """Put dead letters (given ids, or all not yet replayed) back on ``stream``; returns count.

    A sharded stream gets them spread over its shards, round robin.
    """
    if stream_ids:
        rows = conn.execute(
            "SELECT stream_id, raw FROM ai_call_rejects WHERE stream_id = ANY(%s)", (stream_ids,)
        ).fetchall()
        missing = set(stream_ids) - {r[0] for r in rows}
        if missing:
            raise LookupError(
                f"no dead letter with id {', '.join(sorted(missing))}; see `ailedger dlq list`"
            )
    else:
        rows = conn.execute(
            "SELECT stream_id, raw FROM ai_call_rejects WHERE replayed_at IS NULL"
            " ORDER BY stream_id"
        ).fetchall()
    if not rows:
        return 0
    shards = ShardedStream.for_client(client, stream)  # spread over the shards, as producers do
    pipe = client.pipeline(transaction=False)
    for _stream_id, raw in rows:
        pipe.xadd(shards.next_key(), {EVENT_FIELD: bytes(raw), VERSION_FIELD: WIRE_VERSION})
    pipe.execute()
    # Marked after the XADD: a crash in between replays twice, which the event id absorbs.
    conn.execute(
        "UPDATE ai_call_rejects SET replayed_at = NOW() WHERE stream_id = ANY(%s)",
        ([r[0] for r in rows],),
    )
    return len(rows)


def purge(
    conn: psycopg.Connection[Any], client: redis.Redis, stream: str, *, older_than: timedelta
) -> int:
    """Delete dead letters last seen before ``older_than`` ago, from the table and the stream."""
    cursor = conn.execute("DELETE FROM ai_call_rejects WHERE last_seen < NOW() - %s", (older_than,))
    # Stream ids start with their creation time in milliseconds.
    cutoff_ms = int((datetime.now().timestamp() - older_than.total_seconds()) * 1000)
    for key in ShardedStream.for_client(client, stream).keys:
        client.xtrim(dead_letter_stream(key), minid=f"{max(cutoff_ms, 0)}-0", approximate=False)
    return cursor.rowcount


def parse_age(text: str) -> timedelta:
    """'30d', '12h', '45m', '90s' -> timedelta; raises ValueError with what is accepted."""
    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds", "w": "weeks"}
    text = text.strip().lower()
    if len(text) >= 2 and text[-1] in units and text[:-1].isdigit():
        return timedelta(**{units[text[-1]]: int(text[:-1])})
    raise ValueError(f"cannot read age {text!r}: use a number and a unit, like 30d, 12h, 45m")

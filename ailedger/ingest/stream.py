"""From received events to stream entries, exactly as the Python producer writes them.

Each event is completed (an id when it has none, the receive time when it has no
timestamp), stamped with the service of a bound token, encoded by the producer's own
``encode_event`` (payloads redacted and capped there) and validated as a worker will
validate it, so a bad event is refused now, with its reason, instead of becoming a dead
letter later. The good ones of a request go to Redis in one pipelined round trip.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis
from fastapi import HTTPException

from ailedger.ingest.tokens import Grant
from producer.ids import new_event_id
from producer.shards import ShardedStream, wait_replicas
from producer.wire import ReplicationTimeout, encode_event, xadd_events
from worker.errors import AILedgerError
from worker.event import Rejection, parse_payload

#: Seconds a client should wait before sending again while Redis is away.
RETRY_AFTER_S = 2


class StreamUnavailable(AILedgerError):
    """Redis did not take every event of a request; the client should send them all again."""


@dataclass(slots=True)
class Intake:
    """The outcome of one request: payloads to write, ids accepted, items refused."""

    payloads: list[bytes] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, index: int, event_id: str | None, error: str) -> None:
        self.rejected.append({"index": index, "id": event_id, "error": error})


def admit(
    intake: Intake,
    items: Iterable[tuple[int, Any]],
    *,
    grant: Grant,
    service: str | None = None,
    max_payload_bytes: int,
    received_at: float | None = None,
) -> Intake:
    """Complete, encode and validate ``(index, event)`` pairs into ``intake``.

    ``grant.service`` (a bound token) overrides the event's own ``service``; ``service``
    (a header, an OTLP resource) only fills it in when the event names none.
    """
    now = time.time() if received_at is None else received_at
    for index, item in items:
        if not isinstance(item, dict):
            intake.reject(index, None, f"event must be a JSON object, got {_kind(item)}")
            continue
        fields = dict(item)
        given_id = fields.get("id")
        if given_id is None:
            fields["id"] = new_event_id()
        if grant.service is not None:
            fields["service"] = grant.service
        elif service and fields.get("service") is None:
            fields["service"] = service
        if fields.get("timestamp") is None:
            fields.pop("timestamp", None)
        fields["_logged_at"] = now  # no timestamp: received now, started latency_ms earlier
        _, payload = encode_event(fields, max_payload_bytes=max_payload_bytes)
        result = parse_payload(orjson.loads(payload))
        if isinstance(result, Rejection):
            intake.reject(index, given_id if isinstance(given_id, str) else None, result.reason)
            continue
        intake.payloads.append(payload)
        intake.accepted.append(given_id if isinstance(given_id, str) else str(fields["id"]))
    return intake


def write(client: redis.Redis, stream: str, payloads: list[bytes]) -> None:
    """XADD every payload in one round trip; :class:`StreamUnavailable` unless all were taken.

    A sharded stream takes a request's events on one shard, picked by a hash of the
    first, so that requests spread over the shards (``producer/shards.py``).
    """
    if not payloads:
        return
    try:
        replicas, timeout_ms = wait_replicas()
        shard = ShardedStream.for_client(client, stream).key_for(payloads[0])
        xadd_events(client, shard, payloads, wait_replicas=replicas, wait_timeout_ms=timeout_ms)
    except (redis.RedisError, OSError, ReplicationTimeout) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StreamUnavailable(
            f"Redis did not take the events ({first}); send the whole request again:"
            " event ids make a retry safe"
        ) from None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def write_or_retry_later(client: redis.Redis, stream: str, payloads: list[bytes]) -> None:
    """:func:`write`, or 503 with ``Retry-After`` for the client to send everything again."""
    try:
        write(client, stream, payloads)
    except StreamUnavailable as exc:
        raise HTTPException(
            status_code=503, detail=str(exc), headers={"Retry-After": str(RETRY_AFTER_S)}
        ) from None

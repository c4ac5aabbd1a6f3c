"""The wire format: a logged call as the bytes of one stream entry, and how entries are sent.

:func:`encode_event` turns the fields a service logged into the entry's payload
(sender thread only); :func:`xadd_events` writes a batch of them as RESP in one
round trip. The entry's field names and version live in ``producer/constants.py``.

:func:`spill_batch` is the cheap form a burst is spooled in: a whole batch of logged
fields as one JSON array, in one orjson call (~0.3 to 0.8 µs an event against 3 to 10 µs
for :func:`encode_event`, whose redaction is most of its cost), so that the sender
can move events to disk as fast as callers log them. :func:`encode_spilled` finishes
the work (usage, timestamp, redaction) when the batch is replayed, before it reaches
Redis; until then the batch sits, unredacted, in the spool folder, which is this
user's own (0700).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from producer.constants import EVENT_FIELD, VERSION_FIELD, WIRE_VERSION
from producer.redact import redact, repair_text
from producer.usage import usage_from_response

if TYPE_CHECKING:
    import redis

log = logging.getLogger("ailedger.producer")

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS
_PAYLOAD_FIELDS = ("request_data", "response_data")
#: True when a logged event's keys name no payload (nothing to redact before the disk).
_NO_PAYLOAD = frozenset((*_PAYLOAD_FIELDS, "response")).isdisjoint


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    return str(value)


def absorb_response(fields: dict[str, Any]) -> None:
    """Replace an SDK ``response`` object by the usage it reports (and its data, if a dict)."""
    response = fields.pop("response", None)
    if response is not None:
        for name, value in usage_from_response(response).items():
            fields.setdefault(name, value)
        if "response_data" not in fields and isinstance(response, dict):
            fields["response_data"] = response


def _spill_default(value: Any) -> Any:
    if isinstance(value, Decimal | BaseException | set | frozenset | tuple):
        return _default(value)
    raise TypeError  # an SDK object, a flush marker: the careful path takes this batch


def redact_payloads(fields: dict[str, Any], *, max_bytes: int) -> None:
    """Redact and cap the payloads in place, as the stream will get them."""
    for name in _PAYLOAD_FIELDS:
        if fields.get(name) is not None:
            fields[name] = redact(fields[name], max_bytes=max_bytes)


def spill_batch(batch: list[Any], *, strict: bool = False) -> bytes | None:
    """Logged fields as one spool record (a JSON array), or None if orjson cannot take them.

    ``strict``: refuse (None) anything but plain fields without payloads, which replay
    exactly as they would have been sent: the fast path, one orjson call for the whole
    batch. A payload may hold a secret, which must not reach the disk unredacted, so a
    batch with one takes the careful path. Otherwise ``absorb_response`` and
    ``redact_payloads`` must have run on every event (an SDK object would be spooled as
    its ``str()``, a secret as itself).
    """
    try:
        if strict:
            for item in batch:
                if type(item) is dict and not _NO_PAYLOAD(item.keys()):
                    return None
            return orjson.dumps(batch, default=_spill_default, option=orjson.OPT_UTC_Z)
        return orjson.dumps(batch, default=_default, option=_OPTIONS)
    except Exception:  # a huge int, a lone surrogate, a broken __str__: encode one by one
        return None


def is_spilled(record: bytes) -> bool:
    """True for a record :func:`spill_batch` wrote (an array), False for an encoded event."""
    return record[:1] == b"["


def encode_spilled(record: bytes, *, max_payload_bytes: int) -> list[bytes]:
    """The stream payloads of a spilled batch, encoded as :func:`encode_event` would have."""
    try:
        batch = orjson.loads(record)
    except orjson.JSONDecodeError as exc:  # the CRC matched, so this is not disk damage
        log.warning("ailedger could not read a spilled batch of %d bytes: %s", len(record), exc)
        return []
    return [
        encode_event(fields, max_payload_bytes=max_payload_bytes)[1]
        for fields in batch
        if isinstance(fields, dict) and "id" in fields
    ]


def encode_event(fields: dict[str, Any], *, max_payload_bytes: int) -> tuple[str, bytes]:
    """``(event_id, payload)`` for the stream. Never raises: the event is always sent."""
    event_id = str(fields["id"])
    logged_at: float = fields.pop("_logged_at", 0.0)
    try:
        absorb_response(fields)
        if "timestamp" not in fields:
            # The event records when the call started; a logged latency tells us how long ago.
            started = logged_at
            latency = fields.get("latency_ms")
            if isinstance(latency, int | float) and not isinstance(latency, bool) and latency > 0:
                started -= latency / 1000
            fields["timestamp"] = datetime.fromtimestamp(started, UTC)
        error = fields.get("error_message")
        if isinstance(error, BaseException):
            fields["error_message"] = f"{type(error).__name__}: {error}"
        redact_payloads(fields, max_bytes=max_payload_bytes)
        return event_id, orjson.dumps(fields, default=_default, option=_OPTIONS)
    except Exception as exc:
        # Something in the fields defeats the encoder (a huge int, a broken __str__):
        # send what can be sent, and say which field was the problem, so the worker
        # can keep the call and its reason instead of the producer losing it.
        log.warning("ailedger could not encode event %s: %s", event_id, exc)
        safe = {
            repair_text(k): repair_text(v) if isinstance(v, str) else v
            for k, v in fields.items()
            if isinstance(v, str | float | None) or (isinstance(v, int) and abs(v) < 2**63)
        }
        safe["id"] = repair_text(event_id)
        safe.setdefault("timestamp", logged_at)
        safe["_encode_error"] = repair_text(f"{type(exc).__name__}: {exc}"[:500])
        try:
            return event_id, orjson.dumps(safe, default=repr, option=_OPTIONS)
        except Exception:  # the last resort: the worker will say what is missing
            return event_id, orjson.dumps({"id": safe["id"], "_encode_error": "unencodable"})


class ReplicationTimeout(Exception):
    """The master took the batch but fewer replicas than asked confirmed it in time."""


def xadd_events(
    client: redis.Redis,
    stream: str,
    payloads: Sequence[bytes],
    *,
    wait_replicas: int = 0,
    wait_timeout_ms: int = 1000,
) -> None:
    """XADD encoded events in one pipelined round trip; raises if Redis refused any.

    The commands are written as RESP directly: redis-py's pipeline packs each
    command in Python, which holds the GIL for milliseconds per batch, time the
    service's threads would spend waiting in ``log()``.

    Against a cluster the batch goes to the node that owns ``stream``'s slot; when
    that node says the slot moved (MOVED/ASK: a failover, a resharding) the slot map
    is refreshed and the batch sent once more. ``wait_replicas``: the same round trip
    ends with ``WAIT``, and :class:`ReplicationTimeout` is raised unless that many
    replicas have the batch, so the caller keeps it (and sends it again) instead of
    trusting a master that may crash before replicating it.
    """
    if not payloads:
        return
    from redis.exceptions import AskError, ConnectionError, MovedError, TimeoutError

    packed = _pack(stream, payloads)
    if wait_replicas:
        timeout = b"%d" % wait_timeout_ms
        packed += b"*3\r\n$4\r\nWAIT\r\n$%d\r\n%d\r\n$%d\r\n%s\r\n" % (
            len(b"%d" % wait_replicas),
            wait_replicas,
            len(timeout),
            timeout,
        )
    nodes = getattr(client, "nodes_manager", None)
    for attempt in (1, 2):
        try:
            _send(_pool_for(client, stream), packed, len(payloads), wait_replicas)
            return
        except (MovedError, AskError):
            if nodes is None or attempt == 2:
                raise
            nodes.initialize()
        except (ConnectionError, TimeoutError):
            if nodes is not None:
                # The node may be gone for good (a failover follows): the next attempt,
                # the caller's retry, must ask the cluster who owns the slot now.
                with contextlib.suppress(Exception):
                    nodes.initialize()
            raise


def _pack(stream: str, payloads: Sequence[bytes]) -> bytes:
    name = stream.encode()
    head = b"*7\r\n$4\r\nXADD\r\n$%d\r\n%s\r\n$1\r\n*\r\n$%d\r\n%s\r\n" % (
        len(name),
        name,
        len(EVENT_FIELD),
        EVENT_FIELD,
    )
    tail = b"\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
        len(VERSION_FIELD),
        VERSION_FIELD,
        len(WIRE_VERSION),
        WIRE_VERSION,
    )
    return b"".join(b"%s$%d\r\n%s%s" % (head, len(p), p, tail) for p in payloads)


def _pool_for(client: redis.Redis, stream: str) -> Any:
    """The pool of the node holding ``stream`` (the client's own, if not a cluster)."""
    if getattr(client, "nodes_manager", None) is None:
        return client.connection_pool
    cluster: Any = client
    node = cluster.get_node_from_key(stream)
    return cluster.get_redis_connection(node).connection_pool


def _send(pool: Any, packed: bytes, count: int, wait_replicas: int) -> None:
    from redis.exceptions import ResponseError

    conn = pool.get_connection()
    try:
        conn.send_packed_command([packed], check_health=False)
        error: Exception | None = None
        for _ in range(count):
            try:
                conn.read_response()
            except ResponseError as exc:  # keep reading: the connection stays in sync
                error = error or exc
        confirmed = wait_replicas
        if wait_replicas:
            try:
                confirmed = int(conn.read_response())
            except ResponseError as exc:
                error = error or exc  # a MOVED of the XADDs says more than WAIT's refusal
        if error is not None:
            raise error
        if confirmed < wait_replicas:
            raise ReplicationTimeout(
                f"Redis took the batch but {confirmed} of {wait_replicas} replica(s) confirmed"
                " it in time; it is kept and sent again (set AILEDGER_REDIS_WAIT_REPLICAS=0"
                " where Redis has no replicas)"
            )
    except BaseException:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)

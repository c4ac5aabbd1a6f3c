"""The stream as one consumer of the group sees it: read, claim, count, lease, tidy.

Owned by the worker's reading loop, which is the only thread that uses it. Each
call to :meth:`StreamSource.next_batch` gives, in order of preference:

1. this consumer's own unacknowledged entries (``XREADGROUP … 0``): a restart under
   the same name, or a batch that failed here, is retried first;
2. entries idle too long at other consumers (``XAUTOCLAIM``): a worker killed
   mid-batch does not hold its entries hostage;
3. new entries (``XREADGROUP … >`` with ``COUNT`` and a short ``BLOCK``).

In burst mode a drained stream is not yet done while other consumers hold
entries: :meth:`StreamSource.claim_from_departed` takes those of consumers whose
heartbeat is gone, and the worker waits for the live ones.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import redis
import structlog

from producer.connection import connect
from producer.constants import heartbeat_key
from worker.metrics import WorkerMetrics
from worker.settings import WorkerSettings
from worker.trimming import remove_departed_consumers, trim_acknowledged

log = structlog.get_logger("ailedger.worker")

Entry = tuple[bytes, dict[bytes, bytes]]

#: How long a burst worker waits for new entries before deciding the stream is drained:
#: long enough for a producer's next batch in flight, short next to the command's run.
BURST_BLOCK_MS = 50


def ensure_group(client: redis.Redis, stream: str, group: str) -> None:
    """The consumer group, reading from the stream's start (made if need be); kept if it exists."""
    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


@dataclass(slots=True)
class Delivery:
    """A batch of entries and how they came: redelivered ones carry their delivery counts."""

    entries: list[Entry]
    redelivered: bool = False
    counts: dict[bytes, int] = field(default_factory=dict)


def renew_lease(
    client: redis.Redis, settings: WorkerSettings, consumer: str, ids: list[bytes]
) -> None:
    """Keep a batch we are still working on from looking abandoned to other workers.

    ``XCLAIM … JUSTID`` resets the entries' idle time without counting a delivery,
    so a long Postgres outage neither hands the batch around nor uses up its
    delivery limit. Best effort: Redis away means nobody else claims either.
    """
    if not ids:
        return
    with contextlib.suppress(redis.RedisError):
        client.xclaim(
            settings.stream,
            settings.group,
            consumer,
            min_idle_time=0,
            message_ids=list[Any](ids),
            justid=True,
        )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class StreamSource:
    """Reads batches for one consumer; used by the worker's reading loop only."""

    def __init__(
        self, settings: WorkerSettings, consumer: str, *, metrics: WorkerMetrics, burst: bool
    ) -> None:
        self.settings = settings
        self.consumer = consumer
        self.burst = burst
        self.claimed = 0
        self._metrics = metrics
        self._client: redis.Redis | None = None
        self._own_backlog = True
        self._next_claim = 0.0
        self._claim_cursor = "0-0"
        self.log = log.bind(consumer=consumer, stream=settings.stream)

    @property
    def own_backlog(self) -> bool:
        """Whether this consumer may still have entries it was given and did not acknowledge."""
        return self._own_backlog

    def retry_own(self) -> None:
        """Read this consumer's own pending entries first next time: a failed batch is retried."""
        self._own_backlog = True

    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = connect(
                self.settings.redis_url,
                socket_timeout=self.settings.block_ms / 1000 + 10,
                connect_timeout=5,
                cluster=self.settings.redis_cluster,
                strict=True,  # a cluster must not be mistaken for a single Redis
            )
            ensure_group(self._client, self.settings.stream, self.settings.group)
        return self._client

    def reset(self) -> None:
        """Forget the connection (Redis went away, or the group was deleted)."""
        if self._client is not None:
            self._client.close()
        self._client = None

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(redis.RedisError):
                self._client.delete(heartbeat_key(self.settings.stream, self.consumer))
        self.reset()

    def next_batch(self) -> Delivery:
        """The next batch (possibly empty), own backlog and idle claims first."""
        client = self.client()
        settings = self.settings
        if self._own_backlog:
            entries = self._read(client, "0", block=None)
            if entries:
                return self._redelivered(entries)
            self._own_backlog = False
        now = time.monotonic()
        if now >= self._next_claim:
            self.housekeeping()
            cursor, claimed, _deleted = client.xautoclaim(
                settings.stream,
                settings.group,
                self.consumer,
                min_idle_time=settings.claim_idle_ms,
                start_id=self._claim_cursor,
                count=settings.batch_size,
            )
            self._claim_cursor = _text(cursor)
            if self._claim_cursor == "0-0":
                self._next_claim = now + settings.claim_every_s
            found = [(sid, fields) for sid, fields in claimed if fields is not None]
            if found:
                self._count_claimed(found, "claimed idle entries")
                return self._redelivered(found)
        block = BURST_BLOCK_MS if self.burst else settings.block_ms
        return Delivery(self._read(client, ">", block=block))

    def pending_elsewhere(self) -> tuple[int, list[str]]:
        """Entries pending at other consumers, and which of those consumers have no heartbeat."""
        client = self.client()
        stream, group = self.settings.stream, self.settings.group
        waiting = 0
        departed = []
        for info in client.xinfo_consumers(stream, group):
            name, pending = _text(info["name"]), int(info["pending"])
            if name == self.consumer or not pending:
                continue
            waiting += pending
            if not client.exists(heartbeat_key(stream, name)):
                departed.append(name)
        return waiting, departed

    def claim_from_departed(self, consumers: list[str]) -> Delivery:
        """Take the entries of consumers that are gone, without waiting for them to go idle."""
        client = self.client()
        stream, group = self.settings.stream, self.settings.group
        for name in consumers:
            rows: list[dict[str, Any]] = client.xpending_range(
                stream, group, min="-", max="+", count=self.settings.batch_size, consumername=name
            )
            ids = [row["message_id"] for row in rows]
            if not ids:
                continue
            claimed: list[Entry] = client.xclaim(  # type: ignore[assignment]
                stream, group, self.consumer, min_idle_time=0, message_ids=ids
            )
            found = [(sid, fields) for sid, fields in claimed if fields]
            if found:
                self._count_claimed(found, "claimed the entries of a departed consumer")
                return self._redelivered(found)
        return Delivery([])

    def housekeeping(self) -> None:
        """Trim what every group acknowledged; forget consumers that left owning nothing.

        Guarded: nothing met here (a race with another worker, an odd reply) may stop
        the worker; it is logged and tried again at the next claim round.
        """
        settings = self.settings
        try:
            client = self.client()
            trimmed = trim_acknowledged(client, settings.stream)
            if trimmed:
                self.log.debug("stream trimmed", entries=trimmed)
            removed = remove_departed_consumers(
                client,
                settings.stream,
                settings.group,
                idle_ms=max(settings.claim_idle_ms, 60_000),
            )
            if removed:
                self.log.info("departed consumers removed", consumers=removed)
        except (redis.ConnectionError, redis.TimeoutError):
            raise  # the reading loop handles an outage
        except Exception:
            self.log.exception("stream housekeeping failed; trying again later")

    def _redelivered(self, entries: list[Entry]) -> Delivery:
        return Delivery(entries, redelivered=True, counts=self._delivery_counts(entries))

    def _count_claimed(self, entries: list[Entry], message: str) -> None:
        self.claimed += len(entries)
        self._metrics.claimed(len(entries))
        self.log.info(message, count=len(entries))

    def _delivery_counts(self, entries: list[Entry]) -> dict[bytes, int]:
        ids = [sid for sid, _ in entries]
        rows: list[dict[str, Any]] = self.client().xpending_range(
            self.settings.stream,
            self.settings.group,
            min=ids[0],
            max=ids[-1],
            count=len(ids) * 4 + 100,
            consumername=self.consumer,
        )
        return {row["message_id"]: int(row["times_delivered"]) for row in rows}

    def _read(self, client: redis.Redis, start: str, *, block: int | None) -> list[Entry]:
        response: Any = client.xreadgroup(
            self.settings.group,
            self.consumer,
            {self.settings.stream: start},
            count=self.settings.batch_size,
            block=block,
        )
        if not response:
            return []
        entries: list[Entry] = response[0][1]
        # An entry deleted while pending comes back with no fields: nothing to store,
        # but it must leave the pending list.
        gone = [sid for sid, fields in entries if not fields]
        if gone:
            client.xack(self.settings.stream, self.settings.group, *gone)
        return [(sid, fields) for sid, fields in entries if fields]

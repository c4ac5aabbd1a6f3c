"""The sender thread: takes what callers logged, sends it to Redis, spools what it cannot.

One :class:`Sender` per logger (and per forked child), run by the thread named
``ailedger-sender``. Each round it is in one of two modes:

- **direct** — the spool is empty and Redis answers: up to ``batch_size`` events
  go from the buffer to Redis in one pipelined round trip;
- **spooling** — a send failed, Redis is in backoff, or callers log faster than it
  sends (the buffer is past ``spill_at``, a few batches): what is buffered goes to
  the spool, in order, and the spool is replayed oldest first once Redis answers,
  before anything newer, so order is kept and memory stays bounded;
- and, in either mode, **stopping** once ``close()`` asked: everything buffered is
  sent, or spooled for the next start, before the deadline.

Spilling is cheap so that it keeps up with callers logging flat out: a batch of raw
fields goes to disk as one record, in one orjson call (``producer/wire.py:
spill_batch``); the full encoding — usage, timestamp, redaction — is done when the
batch is replayed. Events that carry a payload are redacted before they are spilled: no
secret reaches the disk. The caller's thread never touches the disk. The sender holds ``work_lock``
except while it waits (on Redis, or for work), so that a ``close()`` that runs out
of time can take over what it holds.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from producer.backoff import Backoff
from producer.connection import connect
from producer.ids import make_ahead
from producer.replay import head_batch
from producer.shards import ShardedStream, wait_replicas
from producer.spool import DiskSpool, MemorySpool, Spool
from producer.wire import (
    absorb_response,
    encode_event,
    encode_spilled,
    is_spilled,
    redact_payloads,
    spill_batch,
    xadd_events,
)

if TYPE_CHECKING:
    import threading

    import redis

    from producer.logger import AICallLogger

log = logging.getLogger("ailedger.producer")


class Mode(enum.Enum):
    """Where this round sends what is buffered."""

    DIRECT = "direct"
    SPOOLING = "spooling"


class FlushMarker:
    """Put in the buffer by ``flush()``; set by the sender once everything before it is sent.

    ``clean`` is False when an event logged since the previous flush was dropped.
    """

    __slots__ = ("clean", "done")

    def __init__(self, done: threading.Event) -> None:
        self.done = done
        self.clean = True


class Stop:
    """Sentinel: the sender finishes what is buffered, then exits."""


class Abandoned(Exception):
    """close() ran out of time and spooled what the sender held: the sender just leaves."""


STOP = Stop()


class Sender:
    """Sends one logger's buffer; its state belongs to the sender thread (or to close())."""

    def __init__(
        self,
        owner: AICallLogger,
        buffer: deque[Any],
        packed: deque[tuple[bytes | list[Any], int]],
        wake: threading.Event,
        *,
        client: redis.Redis | None,
        backoff: Backoff,
        work_lock: threading.Lock,
    ) -> None:
        self._owner = owner
        self._buffer = buffer
        self._packed = packed
        self._wake = wake
        self._client = client
        self.work_lock = work_lock
        self.spool: Spool | None = None
        self._pending: list[bytes] = []  # taken from the buffer, being sent directly
        self.abandoned = False
        self.all_sent = True
        #: Counts of this logger's own events, except ``replayed``, which includes what
        #: it adopted from writers that are gone.
        self.sent = self.send_errors = self.replayed = self.spool_dropped = 0
        self.spooled_total = self.replayed_own = 0
        self.in_flight = 0  # taken from the buffer, not yet sent, spooled or dropped
        self.drops_at_marker = 0  # dropped so far when the last flush marker was reached
        self.flushes_reached = 0  # flush markers reached, against the owner's flushes_asked
        self._spilled_head: tuple[bytes, list[bytes]] | None = None  # encoded once, retried
        self._raw = False  # spill raw batches: only to disk (a memory spool is counted in events)
        self.backoff = backoff
        self.retry_at = 0.0  # after a failure, no attempt before this (monotonic clock)
        self.stopping = False
        self.markers: list[FlushMarker] = []  # released when pending is sent
        self.spool_markers: deque[tuple[int, FlushMarker]] = deque()
        #: Reached while events older than them were still on their way: in a batch
        #: callers packed, or in the batch this sender is sending while a caller spills
        #: for it. Judged once those are sent or spooled (``_settle``).
        self.deferred: list[FlushMarker] = []
        self.spool_full = False
        self.drops_seen = 0
        self.overflowing = False
        self._relieving = False  # a caller spills for the sender: no Redis from its thread
        self._shards: ShardedStream | None = None
        self._wait_replicas = (0, 0)

    @property
    def spooled(self) -> int:
        """This logger's events on disk (or in the memory spool), not yet sent."""
        return self.spooled_total - self.replayed_own

    def mode(self, spool: Spool) -> Mode:
        """Direct while the spool is empty, Redis is not in backoff and callers are not ahead."""
        behind = len(self._buffer) > self._owner.spill_at or bool(self._packed)
        if spool.empty and time.monotonic() >= self.retry_at and not behind:
            return Mode.DIRECT
        return Mode.SPOOLING

    def _redis(self) -> redis.Redis:
        if self._client is None:
            # Short timeouts: a Redis that accepts connections but does not answer
            # must send events to the spool within seconds, not pile them up in memory.
            # strict: the shard keys depend on whether this is a cluster, so ask first.
            self._client = connect(
                self._owner.redis_url or "", socket_timeout=2.0, connect_timeout=1.0, strict=True
            )
        return self._client

    def _send(self, payloads: list[bytes]) -> None:
        """One batch to one shard (the next, round robin), waiting for replicas if configured."""
        client = self._redis()
        if self._shards is None:
            self._shards = ShardedStream.for_client(client, self._owner.stream)
            self._wait_replicas = wait_replicas()
        replicas, timeout_ms = self._wait_replicas
        xadd_events(
            client,
            self._shards.next_key(),
            payloads,
            wait_replicas=replicas,
            wait_timeout_ms=timeout_ms,
        )

    def _where(self) -> str:
        return str(self._owner.spool_dir) if self._owner.spool_dir is not None else "memory"

    def _open_spool(self) -> Spool:
        if self._owner.spool_dir is None:
            spool: Spool = MemorySpool(self._owner.max_buffer)
        else:
            spool = DiskSpool(
                self._owner.spool_dir,
                stream=self._owner.stream,
                max_bytes=self._owner.max_spool_bytes,
            )
            try:
                adopted = spool.adopt()
            except OSError as exc:
                log.warning(
                    "ailedger cannot read its spool folder %s: %s", self._owner.spool_dir, exc
                )
                adopted = 0
            if adopted:
                log.warning(
                    "ailedger found %d spool segment(s) that a stopped producer left in %s; "
                    "sending them first",
                    adopted,
                    self._owner.spool_dir,
                )
            self._raw = True
        self.spool = spool
        return spool

    @contextmanager
    def _unlocked(self) -> Iterator[None]:
        """Wait (on Redis, or for work) with the work lock free for close() to take."""
        self.work_lock.release()
        try:
            yield
        finally:
            self.work_lock.acquire()
            if self.abandoned:
                raise Abandoned

    def run(self) -> None:
        """The sender thread's loop, until stopped (or abandoned by close())."""
        with self.work_lock:
            spool = self._open_spool()
            while True:
                try:
                    if self._step(spool):
                        break
                except Abandoned:
                    return
                except Exception:  # guarded: the loop never dies of one failure
                    log.exception("ailedger sender iteration failed; going on")
                    if self.stopping and time.monotonic() >= self._owner.stop_deadline:
                        break
                    with contextlib.suppress(Abandoned), self._unlocked():
                        time.sleep(0.1)
                    if self.abandoned:
                        return
            self.finish(spool)

    def _step(self, spool: Spool) -> bool:
        """One round: send directly, or spill to the spool and replay it. True when done."""
        if not self.stopping and (spool.empty or time.monotonic() < self.retry_at):
            # Less than a batch and nobody waiting: wait for a full batch (log() wakes
            # us), a flush() or close(), or the interval. Sending each few events as they
            # come would cost a round trip, and the service's threads the GIL, a thousand
            # times a second at 10k/s.
            self._wake.clear()  # before looking: a wake set from here on is not lost
            if len(self._buffer) < self._owner.batch_size and not self._asked():
                make_ahead()  # ids for the next calls, while there is nothing to send
                with self._unlocked():
                    self._wake.wait(self._owner.flush_interval)
        if self.mode(spool) is Mode.DIRECT:
            self.stopping = self._take() or self.stopping
            sent = True
            if self._pending:
                sent = self._try_send(self._pending)
                if sent:
                    self.sent += len(self._pending)
                else:
                    self._spill(spool, self._pending)
                self._pending = []
            if (self.markers or self.deferred) and self._packed_before():
                self.deferred += self.markers  # the next round, spooling, settles them
            else:
                self._settle(spool, self.deferred)  # older than this round's markers
                self.deferred = []
                if sent:
                    for marker in self.markers:
                        self._reached(marker)
                        marker.done.set()
                else:
                    self._settle(spool, self.markers)
            self.markers.clear()
        else:
            self.stopping = self._spill_buffer(spool) or self.stopping
            # A burst goes to disk first; the replay, which encodes, waits for a lull.
            ready = time.monotonic() >= self.retry_at
            if not spool.empty and ready and (self.stopping or not self._behind()):
                self._replay(spool)
        while self.spool_markers and (
            spool.empty or spool.consumed_own >= self.spool_markers[0][0]
        ):
            self.spool_markers.popleft()[1].done.set()
        self._report_drops()
        if not self.stopping:
            return False
        if not self._buffer and spool.empty:
            return True
        now = time.monotonic()
        if now >= self._owner.stop_deadline or self.retry_at >= self._owner.stop_deadline:
            return True  # no attempt left before the deadline: _finish spools the rest
        if not self._buffer and now < self.retry_at:
            with self._unlocked():
                time.sleep(self.retry_at - now)
        return False

    def _packed_before(self) -> bool:
        """Whether events perhaps older than a marker just taken are still on their way.

        They may be in a batch callers packed (taking the pack lock waits out a caller
        packing right now), or in the batch this sender is sending while a caller spills
        for it (``relieve``).
        """
        if self._pending:
            return True
        with self._owner.pack_lock:
            return bool(self._packed)

    def _settle(self, spool: Spool, markers: list[FlushMarker]) -> None:
        """Everything logged before ``markers`` is sent or spooled: released with the spool."""
        for marker in markers:
            self._reached(marker)
            self.spool_markers.append((spool.appended, marker))

    def _asked(self) -> bool:
        """A flush() is waiting for a marker not reached yet, or close() was called."""
        owner = self._owner
        return owner.closed or owner.flushes_asked != self.flushes_reached

    def _behind(self) -> bool:
        return len(self._buffer) > self._owner.batch_size

    def _reached(self, marker: FlushMarker) -> None:
        """Everything before ``marker`` is sent, spooled or dropped: judge its window."""
        self.flushes_reached += 1
        dropped = self._owner.dropped_by_callers + self.spool_dropped
        marker.clean = dropped == self.drops_at_marker
        self.drops_at_marker = dropped

    def _encode(self, fields: dict[str, Any]) -> bytes:
        return encode_event(fields, max_payload_bytes=self._owner.max_payload_bytes)[1]

    def _encode_spilled(self, record: bytes) -> list[bytes]:
        cached = self._spilled_head
        if cached is None or cached[0] is not record:  # a failed replay is retried as is
            payloads = encode_spilled(record, max_payload_bytes=self._owner.max_payload_bytes)
            cached = self._spilled_head = (record, payloads)
        return cached[1]

    def _records(self, batch: list[dict[str, Any]]) -> tuple[list[bytes], list[int]]:
        """Spool records for ``batch`` and how many events each holds."""
        if self._raw:
            try:
                max_bytes = self._owner.max_payload_bytes
                for fields in batch:
                    if "response" in fields:
                        absorb_response(fields)
                    redact_payloads(fields, max_bytes=max_bytes)  # no secret reaches the disk
                record = spill_batch(batch)
            except Exception:  # an SDK object that defeats usage extraction: encode one by one
                record = None
            if record is not None:
                return [record], [len(batch)]
        return [self._encode(fields) for fields in batch], [1] * len(batch)

    def _take(self) -> bool:
        """Move up to one batch from the buffer into ``_pending``; True if told to stop."""
        buffer, pending = self._buffer, self._pending
        while len(pending) < self._owner.batch_size and buffer:
            item = buffer.popleft()
            if isinstance(item, dict):
                pending.append(self._encode(item))
            elif isinstance(item, FlushMarker):
                self.markers.append(item)
                return False  # send what came before the marker, then release it
            elif item is STOP:
                return True
        return False

    def _spill_buffer(self, spool: Spool) -> bool:
        """Move up to ``spill_chunk`` buffered items into the spool, in order; True if told to stop.

        The round's records go to the spool in one write: each write gives up the GIL,
        and a sender competing with busy callers waits a switch interval to get it back.
        A batch of plain fields costs one orjson call and no Python per event; a batch
        holding anything else (a flush marker, an SDK object) is taken item by item.
        """
        records: list[bytes] = []
        counts: list[int] = []
        batches: list[list[Any]] = []
        # Deferred markers: this round spools every batch packed before it began.
        deferred, self.deferred = self.deferred, []
        for _ in range(len(self._packed)):  # older than anything still in the buffer
            packed, events = self._packed.popleft()
            if isinstance(packed, bytes):
                records.append(packed)
                counts.append(events)
            else:
                batches.append(packed)
        popleft = self._buffer.popleft
        items = [popleft() for _ in range(min(len(self._buffer), self._owner.spill_chunk))]
        self.in_flight = len(items) + sum(counts) + sum(len(b) for b in batches)
        batch_size = self._owner.batch_size
        batches += [items[start : start + batch_size] for start in range(0, len(items), batch_size)]
        stop = False
        for batch in batches:
            record = spill_batch(batch, strict=True) if self._raw else None
            if record is not None:
                records.append(record)
                counts.append(len(batch))
                continue
            fields: list[dict[str, Any]] = []
            for item in batch:
                if type(item) is dict:  # log() appends the dict its **fields made
                    fields.append(item)
                elif isinstance(item, FlushMarker):
                    self._add_records(fields, records, counts)
                    fields = []
                    self._spill(spool, records, counts)
                    records, counts = [], []
                    if self._packed_before():
                        self.deferred.append(item)
                    else:
                        self._settle(spool, [item])
                elif item is STOP:
                    stop = True  # what a racing log() appended after it is spooled all the same
            self._add_records(fields, records, counts)
        self._spill(spool, records, counts)
        self.in_flight = 0
        if self._pending:  # a caller spilled for a sender that still holds older events
            self.deferred[:0] = deferred
        else:
            self._settle(spool, deferred)
        return stop

    def relieve(self) -> bool:
        """A caller found the buffer full while this sender waits: spill one round for it.

        Run by that caller's thread, holding the work lock, as ``close()`` does when it
        takes over; the sender, back from Redis, waits for the lock. Never to Redis: a
        caller must not wait on it, so what the spool cannot take is dropped and counted.
        False when there was nothing it could do: the spool not open yet, or closed.
        """
        spool = self.spool
        if spool is None or spool.closed or self.abandoned:
            return False
        self._relieving = True
        try:
            self.stopping = self._spill_buffer(spool) or self.stopping
        finally:
            self._relieving = False
        return True

    def _add_records(
        self, batch: list[dict[str, Any]], records: list[bytes], counts: list[int]
    ) -> None:
        if batch:
            more, more_counts = self._records(batch)
            records += more
            counts += more_counts

    def _spill(self, spool: Spool, records: list[bytes], counts: list[int] | None = None) -> None:
        """Spool ``records``; what does not fit goes to Redis if it answers, else is dropped.

        ``counts``: events per record (one each when not given).
        """
        if not records:
            return
        written = spool.append(records)
        self.spooled_total += written if counts is None else sum(counts[:written])
        rest = records[written:]
        if not rest:
            if self.spool_full:
                self.spool_full = False
                log.warning(
                    "ailedger spool in %s has room again; %d events dropped so far",
                    self._where(),
                    self.spool_dropped,
                )
            return
        events = [p for r in rest for p in (self._encode_spilled(r) if is_spilled(r) else [r])]
        if not self._relieving and time.monotonic() >= self.retry_at and self._try_send(events):
            self.sent += len(events)  # out of order, but sent: better than lost
            return
        self.spool_dropped += len(events)
        if not self.spool_full:
            self.spool_full = True
            log.warning(
                "ailedger spool in %s is full (%d bytes); dropping events until Redis "
                "takes the spooled ones",
                self._where(),
                spool.size_bytes,
            )

    def _replay(self, spool: Spool) -> None:
        """Send the oldest spooled batch; it leaves the spool only once Redis has it."""
        own = spool.head_own
        batch, records = head_batch(
            spool,
            self._owner.batch_size,
            max_payload_bytes=self._owner.max_payload_bytes,
            encode=self._encode_spilled,
        )
        if not records or (batch and not self._try_send(batch)):
            return
        spool.consume(records)
        self._spilled_head = None
        drained = spool.empty or not spool.peek(1)
        self.replayed += len(batch)
        if own:
            self.sent += len(batch)
            self.replayed_own += len(batch)
        if drained:
            # Info, not a warning: a burst spools too, and an outage already warned when it began.
            log.info("ailedger sent everything it had spooled (%d events)", self.replayed)

    def _try_send(self, payloads: list[bytes]) -> bool:
        try:
            with self._unlocked():
                self._send(payloads)
        except Abandoned:
            raise
        except Exception as exc:  # down, refusing, or too slow: all mean "spool and retry"
            if self.abandoned:
                raise Abandoned from None
            self.send_errors += 1
            if self.backoff.attempts == 0:
                log.warning(
                    "ailedger cannot reach Redis (%s); spooling events to %s and retrying",
                    exc,
                    self._where(),
                )
            self.retry_at = time.monotonic() + self.backoff.next_delay()
            return False
        if self.backoff.attempts:
            log.warning("ailedger reached Redis again after %d attempts", self.backoff.attempts)
            self.backoff.reset()
        self.retry_at = 0.0
        return True

    def _report_drops(self) -> None:
        """Say once when callers start finding the buffer full, and once when that ends."""
        dropped = self._owner.dropped_by_callers
        if dropped != self.drops_seen:
            if not self.overflowing and not self._owner.closed:
                self.overflowing = True
                log.warning(
                    "ailedger buffer is full (%d events); dropping events: the sender "
                    "cannot keep up",
                    self._owner.max_buffer,
                )
            self.drops_seen = dropped
        elif self.overflowing and len(self._buffer) < self._owner.max_buffer // 2:
            self.overflowing = False
            log.warning("ailedger buffer has room again; %d events dropped so far", dropped)

    def _rest(self) -> tuple[list[bytes], list[int]]:
        """What is still buffered, as spool records, and how many events each holds."""
        records: list[bytes] = []
        counts: list[int] = []
        batch: list[dict[str, Any]] = []
        while self._packed:
            packed, events = self._packed.popleft()
            if isinstance(packed, bytes):
                records.append(packed)
                counts.append(events)
            else:
                self._add_records([i for i in packed if type(i) is dict], records, counts)
        while True:
            try:
                item = self._buffer.popleft()
            except IndexError:
                break
            if isinstance(item, dict):
                batch.append(item)
                if len(batch) >= self._owner.batch_size:
                    self._add_records(batch, records, counts)
                    batch = []
        self._add_records(batch, records, counts)
        return records, counts

    def finish(self, spool: Spool | None) -> None:
        """Stopping: spool what is left, then close the spool for the next start to send.

        close() runs this too when the sender overran the deadline waiting on Redis: the
        batch in flight is spooled as well and, should that call succeed after all, the
        worker drops the duplicates by event id.
        """
        records, counts = self._rest()
        rest, counts = self._pending + records, [1] * len(self._pending) + counts
        self._pending = []
        if spool is None or spool.closed:
            self.spool_dropped += sum(counts)
            return
        written = spool.append(rest)
        left = not spool.empty
        spool.close()
        self.spooled_total += sum(counts[:written])
        self.spool_dropped += sum(counts[written:])
        unsent = self.spooled
        dropped = self._owner.dropped_by_callers + self.spool_dropped
        self.all_sent = not left and written == len(rest) and not dropped
        if isinstance(spool, MemorySpool) and left:
            self.spool_dropped += unsent
            self.spooled_total -= unsent
            log.warning("ailedger closed with Redis unreachable; %d events were not sent", unsent)
        elif left:
            log.warning(
                "ailedger closed with Redis unreachable; %d events kept in %s for the next "
                "start (or `ailedger spool replay`)",
                unsent,
                self._owner.spool_dir,
            )

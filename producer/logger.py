"""AICallLogger: the caller appends to a bounded buffer; a named thread sends to Redis.

The caller's thread does the least it can — give the event an id and a clock
reading, append it to a deque — so ``log()`` costs microseconds whatever Redis is
doing. Everything else (usage extraction, redaction, encoding, the network, the disk
spool) happens in the sender thread, which XADDs pipelined batches.

Outages. When a send fails, the sender writes that batch to the spool
(``producer/spool.py``) and, until the spool is empty again, moves whatever it takes
from the buffer there too: memory stays bounded and order is kept. It retries Redis
with backoff and, once Redis answers, sends the spool oldest first, before anything
newer. The same happens when Redis answers but slower than callers log (the buffer
passes half full). The caller's thread never touches the disk, so the buffer only
has to absorb the sender's longest stall — one network timeout; an event that still
finds it full is dropped and counted, as are events that find the spool full too.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from producer.backoff import Backoff
from producer.connection import connect
from producer.constants import DEFAULT_STREAM
from producer.context import current_job_id
from producer.ids import new_event_id
from producer.spool import (
    DEFAULT_MAX_BYTES,
    DiskSpool,
    MemorySpool,
    default_spool_dir,
    has_segments,
    xadd_events,
)
from producer.wire import encode_event

log = logging.getLogger("ailedger.producer")

#: Live loggers, so that fork and exit handlers can reach them without keeping them alive.
_loggers: weakref.WeakSet[AICallLogger] = weakref.WeakSet()


class _FlushMarker:
    """Put in the buffer by ``flush()``; set by the sender once everything before it is sent."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class _Stop:
    """Sentinel: the sender finishes what is buffered, then exits."""


class _Abandoned(Exception):
    """close() ran out of time and spooled what the sender held: the sender just leaves."""


_STOP = _Stop()


@dataclass(frozen=True, slots=True)
class ProducerStats:
    """What the logger has done so far; all counts since the logger (or a forked child) began."""

    logged: int
    sent: int  # reached Redis, directly or from the spool
    dropped: int  # lost: buffer full, spool full too, or logged after close()
    send_errors: int
    buffered: int  # in memory, waiting for the sender
    spooled: int  # written to the spool because Redis could not take them (in time)
    replayed: int  # sent from the spool, including what a previous process left there
    spool_skipped: int  # damaged spool records that could not be read back


@dataclass(slots=True)
class _SenderState:
    backoff: Backoff
    retry_at: float = 0.0  # after a failure, no attempt before this (monotonic clock)
    stopping: bool = False
    markers: list[_FlushMarker] = field(default_factory=list)  # released when pending is sent
    spool_markers: deque[tuple[int, _FlushMarker]] = field(default_factory=deque)
    spool_full: bool = False
    drops_seen: int = 0
    overflowing: bool = False


class AICallLogger:
    """Records AI calls to a Redis stream without ever blocking or raising into the caller.

    ``log(**fields)`` returns the event id at once. A background thread named
    ``ailedger-sender`` encodes and sends batches; ``flush(timeout)`` waits for what
    was logged before it; ``close()`` flushes and stops the thread. Process exit
    flushes with a deadline (``exit_timeout``) and spools what is left.

    Spool: ``spool_dir`` (default ``AILEDGER_SPOOL_DIR``, else ``ailedger-spool-<uid>``
    under the system temp dir — set it to a persistent volume where /tmp is wiped on
    restart), capped at ``max_spool_bytes`` for the folder (``AILEDGER_SPOOL_MAX_BYTES``,
    default 1 GiB). ``max_spool_bytes=0`` turns the disk off: failed batches are then
    held in memory (up to ``max_buffer`` events) and lost at exit. A logger that starts
    on a folder where a process that is gone left events sends those first.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        stream: str = DEFAULT_STREAM,
        client: redis.Redis | None = None,
        max_buffer: int = 100_000,
        batch_size: int = 500,
        flush_interval: float = 0.05,
        max_payload_bytes: int = 16_384,
        exit_timeout: float = 5.0,
        backoff: Callable[[], Backoff] = Backoff,
        spool_dir: str | os.PathLike[str] | None = None,
        max_spool_bytes: int | None = None,
    ) -> None:
        if client is None and redis_url is None:
            redis_url = os.environ.get("AILEDGER_REDIS_URL", "redis://127.0.0.1:6379/0")
        if max_spool_bytes is None:
            max_spool_bytes = int(os.environ.get("AILEDGER_SPOOL_MAX_BYTES", DEFAULT_MAX_BYTES))
        self.stream = stream
        self._redis_url = redis_url
        self._client = client
        self.max_buffer = max_buffer
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_payload_bytes = max_payload_bytes
        self.exit_timeout = exit_timeout
        self.max_spool_bytes = max_spool_bytes
        self.spool_dir: Path | None = None
        if max_spool_bytes > 0:
            self.spool_dir = Path(spool_dir) if spool_dir is not None else default_spool_dir()
        self._new_backoff = backoff
        self._closed = False
        self._stop_deadline = float("inf")
        self._reset_after_fork()
        _loggers.add(self)
        if self.spool_dir is not None and has_segments(self.spool_dir):
            # Events a previous process left behind go out without waiting for a log() call.
            self._start_sender()

    def _reset_after_fork(self) -> None:
        # A forked child must not share the parent's buffer, locks, socket or spool files:
        # the parent sends what it buffered and spooled; the child starts empty, with its
        # own sender and its own spool segments.
        spool = getattr(self, "_spool", None)
        if spool is not None:
            spool.abandon()
        self._spool: DiskSpool | MemorySpool | None = None
        # Held by the sender except while it waits (on Redis, or for work), so that a
        # close() that runs out of time can take over what the sender holds.
        self._work_lock = threading.Lock()
        self._buffer: deque[Any] = deque()
        self._pending: list[bytes] = []  # taken from the buffer, being sent directly
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._abandoned = False
        self._all_sent = True
        self._logged = self._dropped = 0  # written by callers' threads
        self._sent = self._send_errors = self._spooled = self._replayed = 0  # by the sender
        self._spool_dropped = 0
        if self._redis_url is not None:
            self._client = None

    # -- the caller's side -------------------------------------------------

    def log(self, **fields: Any) -> str:
        """Record one AI call; returns its event id. Never raises, never blocks."""
        try:
            event_id = fields.get("id")
            if event_id is None:
                event_id = fields["id"] = new_event_id()
            fields["_logged_at"] = time.time()
            if "job_id" not in fields:
                job_id = current_job_id()
                if job_id is not None:
                    fields["job_id"] = job_id
            self._logged += 1
            if self._closed or len(self._buffer) >= self.max_buffer:
                # No disk writes here: they would cost the caller milliseconds. The
                # sender spills to disk long before this in any outage it can see.
                self._dropped += 1
                self._wake.set()
                return str(event_id)
            self._buffer.append(fields)
            if self._thread is None:
                self._start_sender()
            elif len(self._buffer) >= self.batch_size:
                self._wake.set()
            return str(event_id)
        except Exception:  # the promise: logging never breaks the caller
            self._dropped += 1
            return ""

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything logged before this call is sent; False on timeout."""
        if self._thread is None or not self._thread.is_alive():
            return not self._buffer and (self._spool is None or self._spool.empty)
        marker = _FlushMarker()
        self._buffer.append(marker)
        self._wake.set()
        return marker.done.wait(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Flush with a deadline, spool what is left, stop the sender. True if all was sent."""
        timeout = self.exit_timeout if timeout is None else timeout
        if self._closed:
            return self._all_sent and not self._buffer
        self._closed = True
        thread = self._thread
        if thread is None or not thread.is_alive():
            return not self._buffer
        self._stop_deadline = time.monotonic() + timeout
        self._buffer.append(_STOP)
        self._wake.set()
        # The sender gives up at the deadline; allow it a moment past that to say so.
        thread.join(timeout + 0.5)
        if not thread.is_alive():
            return self._all_sent
        # Still waiting on Redis (one socket timeout), or still spooling: take over.
        if self._work_lock.acquire(timeout=30):
            try:
                spool = self._spool
                if spool is not None and spool.closed:  # the sender finished meanwhile
                    return self._all_sent
                self._abandoned = True
                self._finish(spool)
            finally:
                self._work_lock.release()
        return False

    @property
    def stats(self) -> ProducerStats:
        buffered = sum(1 for item in list(self._buffer) if isinstance(item, dict))
        spool = self._spool
        return ProducerStats(
            logged=self._logged,
            sent=self._sent,
            dropped=self._dropped + self._spool_dropped,
            send_errors=self._send_errors,
            buffered=buffered,
            spooled=self._spooled,
            replayed=self._replayed,
            spool_skipped=spool.skipped if spool is not None else 0,
        )

    # -- the sender's side -------------------------------------------------

    def _start_sender(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="ailedger-sender", daemon=True)
            self._thread.start()

    def _redis(self) -> redis.Redis:
        if self._client is None:
            # Short timeouts: a Redis that accepts connections but does not answer
            # must send events to the spool within seconds, not pile them up in memory.
            self._client = connect(self._redis_url or "", socket_timeout=2.0, connect_timeout=1.0)
        return self._client

    def _where(self) -> str:
        return str(self.spool_dir) if self.spool_dir is not None else "memory"

    def _open_spool(self) -> DiskSpool | MemorySpool:
        if self.spool_dir is None:
            spool: DiskSpool | MemorySpool = MemorySpool(self.max_buffer)
        else:
            spool = DiskSpool(self.spool_dir, stream=self.stream, max_bytes=self.max_spool_bytes)
            try:
                adopted = spool.adopt()
            except OSError as exc:
                log.warning("ailedger cannot read its spool folder %s: %s", self.spool_dir, exc)
                adopted = 0
            if adopted:
                log.warning(
                    "ailedger found %d spool segment(s) that a stopped producer left in %s; "
                    "sending them first",
                    adopted,
                    self.spool_dir,
                )
        self._spool = spool
        return spool

    @contextmanager
    def _unlocked(self) -> Iterator[None]:
        """Wait (on Redis, or for work) with the work lock free for close() to take."""
        self._work_lock.release()
        try:
            yield
        finally:
            self._work_lock.acquire()
            if self._abandoned:
                raise _Abandoned

    def _run(self) -> None:
        state = _SenderState(self._new_backoff())
        with self._work_lock:
            spool = self._open_spool()
            while True:
                try:
                    if self._step(state, spool):
                        break
                except _Abandoned:
                    return
                except Exception:  # guarded: the loop never dies of one failure
                    log.exception("ailedger sender iteration failed; going on")
                    if state.stopping and time.monotonic() >= self._stop_deadline:
                        break
                    with contextlib.suppress(_Abandoned), self._unlocked():
                        time.sleep(0.1)
                    if self._abandoned:
                        return
            self._finish(spool)

    def _step(self, st: _SenderState, spool: DiskSpool | MemorySpool) -> bool:
        """One round: send directly, or spill to the spool and replay it. True when done."""
        if not st.stopping and not self._buffer and (spool.empty or time.monotonic() < st.retry_at):
            with self._unlocked():
                self._wake.wait(self.flush_interval)
            self._wake.clear()
        behind = len(self._buffer) > self.max_buffer // 2
        if spool.empty and time.monotonic() >= st.retry_at and not behind:
            st.stopping = self._take(st) or st.stopping
            sent = True
            if self._pending:
                sent = self._try_send(st, self._pending)
                if sent:
                    self._sent += len(self._pending)
                else:
                    self._spill(st, spool, self._pending)
                self._pending = []
            for marker in st.markers:
                if sent:
                    marker.done.set()
                else:
                    st.spool_markers.append((spool.appended, marker))
            st.markers.clear()
        else:
            st.stopping = self._spill_buffer(st, spool) or st.stopping
            if not spool.empty and time.monotonic() >= st.retry_at:
                self._replay(st, spool)
        while st.spool_markers and (spool.empty or spool.consumed_own >= st.spool_markers[0][0]):
            st.spool_markers.popleft()[1].done.set()
        self._report_drops(st)
        if not st.stopping:
            return False
        if not self._buffer and spool.empty:
            return True
        now = time.monotonic()
        if now >= self._stop_deadline or st.retry_at >= self._stop_deadline:
            return True  # no attempt left before the deadline: _finish spools the rest
        if not self._buffer and now < st.retry_at:
            with self._unlocked():
                time.sleep(st.retry_at - now)
        return False

    def _encode(self, fields: dict[str, Any]) -> bytes:
        return encode_event(fields, max_payload_bytes=self.max_payload_bytes)[1]

    def _take(self, st: _SenderState) -> bool:
        """Move up to one batch from the buffer into ``_pending``; True if told to stop."""
        buffer, pending = self._buffer, self._pending
        while len(pending) < self.batch_size and buffer:
            item = buffer.popleft()
            if isinstance(item, dict):
                pending.append(self._encode(item))
            elif isinstance(item, _FlushMarker):
                st.markers.append(item)
                return False  # send what came before the marker, then release it
            elif item is _STOP:
                return True
        return False

    def _spill_buffer(self, st: _SenderState, spool: DiskSpool | MemorySpool) -> bool:
        """Move what is buffered now into the spool, in order; True if told to stop."""
        payloads: list[bytes] = []
        stop = False
        for _ in range(len(self._buffer)):  # bounded: callers must not starve the replay
            item = self._buffer.popleft()
            if isinstance(item, dict):
                payloads.append(self._encode(item))
                if len(payloads) >= self.batch_size:
                    self._spill(st, spool, payloads)
                    payloads = []
            elif isinstance(item, _FlushMarker):
                self._spill(st, spool, payloads)
                payloads = []
                st.spool_markers.append((spool.appended, item))
            elif item is _STOP:
                stop = True
                break
        self._spill(st, spool, payloads)
        return stop

    def _spill(
        self, st: _SenderState, spool: DiskSpool | MemorySpool, payloads: list[bytes]
    ) -> None:
        """Spool ``payloads``; what does not fit goes to Redis if it answers, else is dropped."""
        if not payloads:
            return
        written = spool.append(payloads)
        self._spooled += written
        rest = payloads[written:]
        if not rest:
            if st.spool_full:
                st.spool_full = False
                log.warning(
                    "ailedger spool in %s has room again; %d events dropped so far",
                    self._where(),
                    self._spool_dropped,
                )
            return
        if time.monotonic() >= st.retry_at and self._try_send(st, rest):
            self._sent += len(rest)  # out of order, but sent: better than lost
            return
        self._spool_dropped += len(rest)
        if not st.spool_full:
            st.spool_full = True
            log.warning(
                "ailedger spool in %s is full (%d bytes); dropping events until Redis "
                "takes the spooled ones",
                self._where(),
                spool.size_bytes,
            )

    def _replay(self, st: _SenderState, spool: DiskSpool | MemorySpool) -> None:
        """Send the oldest spooled batch; it leaves the spool only once Redis has it."""
        batch = spool.peek(self.batch_size)
        if not batch or not self._try_send(st, batch):
            return
        spool.consume(len(batch))
        drained = spool.empty or not spool.peek(1)
        self._sent += len(batch)
        self._replayed += len(batch)
        if drained:
            log.warning("ailedger sent everything it had spooled (%d events)", self._replayed)

    def _try_send(self, st: _SenderState, payloads: list[bytes]) -> bool:
        try:
            with self._unlocked():
                xadd_events(self._redis(), self.stream, payloads)
        except _Abandoned:
            raise
        except Exception as exc:  # down, refusing, or too slow: all mean "spool and retry"
            if self._abandoned:
                raise _Abandoned from None
            self._send_errors += 1
            if st.backoff.attempts == 0:
                log.warning(
                    "ailedger cannot reach Redis (%s); spooling events to %s and retrying",
                    exc,
                    self._where(),
                )
            st.retry_at = time.monotonic() + st.backoff.next_delay()
            return False
        if st.backoff.attempts:
            log.warning("ailedger reached Redis again after %d attempts", st.backoff.attempts)
            st.backoff.reset()
        st.retry_at = 0.0
        return True

    def _report_drops(self, st: _SenderState) -> None:
        """Say once when callers start finding the buffer full, and once when that ends."""
        dropped = self._dropped
        if dropped != st.drops_seen:
            if not st.overflowing and not self._closed:
                st.overflowing = True
                log.warning(
                    "ailedger buffer is full (%d events); dropping events: the sender "
                    "cannot keep up",
                    self.max_buffer,
                )
            st.drops_seen = dropped
        elif st.overflowing and len(self._buffer) < self.max_buffer // 2:
            st.overflowing = False
            log.warning("ailedger buffer has room again; %d events dropped so far", dropped)

    def _encode_rest(self) -> list[bytes]:
        payloads: list[bytes] = []
        while True:
            try:
                item = self._buffer.popleft()
            except IndexError:
                return payloads
            if isinstance(item, dict):
                payloads.append(self._encode(item))

    def _finish(self, spool: DiskSpool | MemorySpool | None) -> None:
        """Stopping: spool what is left, then close the spool for the next start to send.

        close() runs this too when the sender overran the deadline waiting on Redis: the
        batch in flight is spooled as well and, should that call succeed after all, the
        worker drops the duplicates by event id.
        """
        rest = self._pending + self._encode_rest()
        self._pending = []
        if spool is None or spool.closed:
            self._spool_dropped += len(rest)
            return
        written = spool.append(rest)
        unsent = spool.appended - spool.consumed_own
        left = not spool.empty
        spool.close()
        self._spooled += written
        self._spool_dropped += len(rest) - written
        self._all_sent = not left and written == len(rest)
        if isinstance(spool, MemorySpool) and left:
            self._spool_dropped += unsent
            log.warning("ailedger closed with Redis unreachable; %d events were not sent", unsent)
        elif left:
            log.warning(
                "ailedger closed with Redis unreachable; %d events kept in %s for the next "
                "start (or `ailedger spool replay`)",
                unsent,
                self.spool_dir,
            )


def _after_fork_in_child() -> None:
    for logger in list(_loggers):
        logger._reset_after_fork()


def _close_all_at_exit() -> None:
    for logger in list(_loggers):
        try:
            logger.close()
        except Exception:  # exit must go on whatever one logger does
            log.exception("ailedger logger failed to close at exit")


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all_at_exit)

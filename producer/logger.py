"""AICallLogger: the caller appends to a bounded buffer; a named thread sends to Redis.

The caller's thread does the least it can — give the event an id and a clock
reading, append it to a deque — so ``log()`` costs microseconds whatever Redis is
doing. Everything else (usage extraction, redaction, encoding, the network, the disk
spool) happens in the sender thread, which XADDs pipelined batches.

The sender (``producer/sender.py``) spools to disk what Redis cannot take
(``producer/spool.py``) and replays it in order, and spills a burst to disk as soon as
the buffer holds more than a few batches (``spill_at``). The caller's thread never
touches the disk. Callers logging flat out from several threads can still outrun a
sender that gets a fifth of the GIL: past ``pack_at`` they pack batches for it, and
should the buffer fill all the same, ``log()`` waits for room (``wait_when_full``,
giving the GIL to the sender) rather than drop an event the spool has room for. An
event is dropped, and counted, only when the spool is off or full, after that wait, or
after ``close()``.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from producer.backoff import Backoff
from producer.constants import DEFAULT_STREAM
from producer.context import current_job_id as _current_job_id
from producer.ids import take_event_id
from producer.sender import STOP, FlushMarker, Sender
from producer.spool import DEFAULT_MAX_BYTES, default_spool_dir, has_segments
from producer.wire import spill_batch

if TYPE_CHECKING:
    import redis

log = logging.getLogger("ailedger.producer")
_now = time.time

#: Live loggers, so that fork and exit handlers can reach them without keeping them alive.
_loggers: weakref.WeakSet[AICallLogger] = weakref.WeakSet()


@dataclass(frozen=True, slots=True)
class ProducerStats:
    """What the logger has done so far; all counts since the logger (or a forked child) began.

    Counts are of this logger's own events, except ``replayed``, which includes what it
    sent for writers that are gone.

    At a quiet moment ``logged == sent + buffered + spooled + dropped + in_flight``.
    """

    logged: int
    sent: int  # reached Redis, directly or from the spool
    dropped: int  # lost: buffer full, spool full too, or logged after close()
    send_errors: int
    buffered: int  # in memory, waiting for the sender
    spooled: int  # on disk (or in the memory spool) now, not yet sent
    replayed: int  # sent from the spool, including what a previous process left there
    spool_skipped: int  # damaged spool records that could not be read back
    spooled_total: int  # ever written to the spool: Redis away, or a burst
    in_flight: int  # taken by the sender, not yet sent, spooled or dropped
    waited: int = 0  # log() calls that found the buffer full and waited for room


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

    Full buffer: only callers logging faster than the sender can spool (hundreds of
    thousands of calls a second) fill it. ``log()`` then waits up to ``wait_when_full``
    seconds for room, while the spool has room; ``0`` drops at once instead.
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
        wait_when_full: float = 1.0,
        backoff: Callable[[], Backoff] = Backoff,
        spool_dir: str | os.PathLike[str] | None = None,
        max_spool_bytes: int | None = None,
    ) -> None:
        if client is None and redis_url is None:
            redis_url = os.environ.get("AILEDGER_REDIS_URL", "redis://127.0.0.1:6379/0")
        if max_spool_bytes is None:
            max_spool_bytes = int(os.environ.get("AILEDGER_SPOOL_MAX_BYTES", DEFAULT_MAX_BYTES))
        self.stream = stream
        self.redis_url = redis_url
        self._client = client
        self.max_buffer = max_buffer
        self.batch_size = batch_size
        #: Past this many buffered events the sender spills to disk instead of sending
        #: directly: callers are logging faster than it sends.
        self.spill_at = max(4 * batch_size, max_buffer // 20)
        #: Events spilled per round (one write): a few milliseconds of the sender's time.
        self.spill_chunk = 16 * batch_size
        #: Past this many, a sender starved of the GIL by callers logging flat out is
        #: helped: one call in ``batch_size`` packs the oldest batch into bytes.
        self.pack_at = max(self.spill_at, max_buffer // 4)
        #: Packed batches held at most (~400 bytes an event): 8x the buffer's events.
        self.max_packed = max(1, 8 * max_buffer // batch_size)
        self.flush_interval = flush_interval
        self.max_payload_bytes = max_payload_bytes
        self.exit_timeout = exit_timeout
        self.wait_when_full = wait_when_full
        self.max_spool_bytes = max_spool_bytes
        self.spool_dir: Path | None = None
        if max_spool_bytes > 0:
            self.spool_dir = Path(spool_dir) if spool_dir is not None else default_spool_dir()
        self._new_backoff = backoff
        self.closed = False
        #: When close() must be done by (monotonic clock); the sender reads it.
        self.stop_deadline = float("inf")
        self._reset_after_fork()
        _loggers.add(self)
        if self.spool_dir is not None and has_segments(self.spool_dir):
            # Events a previous process left behind go out without waiting for a log() call.
            self._start_sender()

    def _reset_after_fork(self) -> None:
        # A forked child must not share the parent's buffer, locks, socket or spool files:
        # the parent sends what it buffered and spooled; the child starts empty, with its
        # own sender and its own spool segments.
        previous = getattr(self, "_sender", None)
        if previous is not None and previous.spool is not None:
            previous.spool.abandon()
        self._buffer: deque[Any] = deque()
        #: Batches callers packed while the sender was starved: (record or items, events).
        self._packed: deque[tuple[bytes | list[Any], int]] = deque()
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        #: Written by callers' threads: events logged, dropped before the sender saw them,
        #: and calls that found the buffer full and waited for room.
        self._logged = self.dropped_by_callers = self.waited = 0
        #: Held by a caller packing a batch (and by the sender reaching a flush marker).
        self.pack_lock = threading.Lock()
        #: flush() calls so far: the sender does not wait for a full batch while one waits.
        self.flushes_asked = 0
        #: log() appends while the buffer is shorter than this: 0 once closed.
        self._room = 0 if self.closed else self.max_buffer
        #: log() calls ``_act()`` from this length on: at once until the sender runs.
        self._act_at = 0
        self._sender = Sender(
            self,
            self._buffer,
            self._packed,
            self._wake,
            client=self._client if self.redis_url is None else None,
            backoff=self._new_backoff(),
            work_lock=threading.Lock(),
        )

    # -- the caller's side -------------------------------------------------

    def log(self, **fields: Any) -> str:
        """Record one AI call; returns its event id. Never raises, never blocks."""
        try:
            event_id = fields.get("id")
            if event_id is None:
                event_id = fields["id"] = take_event_id()
            fields["_logged_at"] = _now()
            if "job_id" not in fields:
                job_id = _current_job_id()
                if job_id is not None:
                    fields["job_id"] = job_id
            self._logged += 1
            buffer = self._buffer
            if len(buffer) < self._room:
                buffer.append(fields)
                if len(buffer) >= self._act_at:
                    self._act()
                return event_id if type(event_id) is str else str(event_id)
            return self._when_full(fields, str(event_id))
        except Exception:  # the promise: logging never breaks the caller
            self.dropped_by_callers += 1
            return ""

    def _when_full(self, fields: dict[str, Any], event_id: str) -> str:
        """The buffer is full, or the logger closed: wait for room if the spool can take it.

        Only callers logging faster than the sender can spool get here (it spills to disk
        long before). A sender at work holds its work lock: sleeping gives it the GIL it
        was starved of, and it spills thousands of events a round, so the wait is short.
        A sender waiting on Redis (hung, say) has let go of the lock: the caller takes it
        and spills a round itself, the one case where a caller writes to the disk. The
        spool off or full, or no room within ``wait_when_full``: the event is dropped and
        counted.
        """
        sender, thread = self._sender, self._thread
        if (
            not self.closed
            and self.wait_when_full > 0
            and self.spool_dir is not None
            and not sender.spool_full
            and thread is not None
            and (thread.ident is None or thread.is_alive())  # starting (no ident yet) or running
        ):
            self.waited += 1
            self._wake.set()
            buffer = self._buffer
            deadline = time.monotonic() + self.wait_when_full
            while len(buffer) >= self._room and not self.closed and time.monotonic() < deadline:
                relieved = False
                if sender.work_lock.acquire(blocking=False):
                    try:
                        relieved = sender.relieve()
                    finally:
                        sender.work_lock.release()
                if not relieved:
                    time.sleep(0.001)
            if len(buffer) < self._room:
                buffer.append(fields)
                return event_id
        self.dropped_by_callers += 1
        self._wake.set()
        return event_id

    def _act(self) -> None:
        """The rare turns of ``log()``: the first call starts the sender; a full batch wakes it.

        Kept out of ``log()`` so that the common call is a few operations: each one
        costs several times its usual price in a service that sleeps between calls,
        whose caches have gone cold.
        """
        if self._thread is None:
            self._start_sender()
            return
        if not self._wake.is_set():
            self._wake.set()  # Event.set() takes a lock: only when it changes something
        if len(self._buffer) >= self.pack_at and self.spool_dir is not None:
            self._pack()  # bounded: at most max_packed batches, then the buffer fills

    def _pack(self) -> None:
        """Callers are ahead of a sender that cannot get the GIL: pack the oldest batch.

        One orjson call over ``batch_size`` events (~0.2 ms) whenever the buffer is this
        full, so about one call in ``batch_size`` while callers stay ahead: memory
        shrinks ~3x and the sender only has to write bytes. No disk here. Events packed
        while the sender takes the next ones may reach Redis a little out of order; none
        is lost.
        """
        if len(self._packed) >= self.max_packed:
            return
        # One packer at a time, the others go on logging; the sender takes the lock before
        # it passes a flush marker, so that no batch older than the marker is still in a
        # caller's hands then.
        if not self.pack_lock.acquire(blocking=False):
            return
        try:
            popleft = self._buffer.popleft
            items: list[Any] = []
            try:
                for _ in range(self.batch_size):
                    items.append(popleft())
            except IndexError:  # the sender took the rest meanwhile
                pass
            if items:
                record = spill_batch(items, strict=True)  # None: a marker or an SDK object
                events = sum(1 for item in items if type(item) is dict) if record is None else 0
                self._packed.append((items, events) if record is None else (record, len(items)))
        finally:
            self.pack_lock.release()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything logged before this call has reached Redis.

        False on timeout, while events are spooled (spooled is not sent), and when an
        event logged since the previous ``flush()`` was dropped.
        """
        thread = self._thread
        if thread is not None and thread.ident is None:
            # Another thread is starting the sender: start() returns once it runs.
            with self._start_lock:
                pass
        if thread is None or not thread.is_alive():
            spool = self._sender.spool
            return (
                not self._buffer
                and not self._packed
                and (spool is None or spool.empty)
                and self.dropped_by_callers + self._sender.spool_dropped == 0
            )
        marker = FlushMarker(threading.Event())
        self.flushes_asked += 1  # before the marker: a sender that sees it does not wait
        self._buffer.append(marker)
        self._wake.set()
        return marker.done.wait(timeout) and marker.clean

    def close(self, timeout: float | None = None) -> bool:
        """Flush with a deadline, spool what is left, stop the sender. True if all was sent."""
        timeout = self.exit_timeout if timeout is None else timeout
        sender = self._sender
        if self.closed:
            return sender.all_sent and not self._buffer
        self.closed = True
        self._room = 0
        thread = self._thread
        if thread is None or not thread.is_alive():
            return not self._buffer
        self.stop_deadline = time.monotonic() + timeout
        self._buffer.append(STOP)
        self._wake.set()
        # The sender gives up at the deadline; allow it a moment past that to say so.
        thread.join(timeout + 0.5)
        if not thread.is_alive():
            return sender.all_sent
        # Still waiting on Redis (one socket timeout), or still spooling: take over.
        if sender.work_lock.acquire(timeout=30):
            try:
                spool = sender.spool
                if spool is not None and spool.closed:  # the sender finished meanwhile
                    return sender.all_sent
                sender.abandoned = True
                sender.finish(spool)
            finally:
                sender.work_lock.release()
        return False

    @property
    def stats(self) -> ProducerStats:
        buffered = sum(1 for item in list(self._buffer) if isinstance(item, dict))
        buffered += sum(events for _batch, events in list(self._packed))
        sender = self._sender
        spool = sender.spool
        return ProducerStats(
            logged=self._logged,
            sent=sender.sent,
            dropped=self.dropped_by_callers + sender.spool_dropped,
            send_errors=sender.send_errors,
            buffered=buffered,
            spooled=sender.spooled,
            replayed=sender.replayed,
            spool_skipped=spool.skipped if spool is not None else 0,
            spooled_total=sender.spooled_total,
            in_flight=sender.in_flight + len(sender._pending),
            waited=self.waited,
        )

    def _start_sender(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._sender.run, name="ailedger-sender", daemon=True
            )
            self._thread.start()
            self._act_at = self.batch_size


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

"""AICallLogger: the caller appends to a bounded buffer; a named thread sends to Redis.

The caller's thread does the least it can — give the event an id and a clock
reading, append it to a deque — so ``log()`` costs microseconds whatever Redis is
doing. Everything else (usage extraction, redaction, encoding, the network) happens
in the sender thread, which XADDs pipelined batches.
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
from typing import Any
from uuid import uuid4

import redis

from producer.backoff import Backoff
from producer.connection import connect
from producer.constants import DEFAULT_STREAM, EVENT_FIELD, VERSION_FIELD, WIRE_VERSION
from producer.context import current_job_id
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


_STOP = _Stop()


@dataclass(frozen=True, slots=True)
class ProducerStats:
    """What the logger has done so far; all counts since the logger was created."""

    logged: int
    sent: int
    dropped: int
    send_errors: int
    buffered: int


class AICallLogger:
    """Records AI calls to a Redis stream without ever blocking or raising into the caller.

    ``log(**fields)`` returns the event id at once. A background thread named
    ``ailedger-sender`` encodes and sends batches; ``flush(timeout)`` waits for what
    was logged before it; ``close()`` flushes and stops the thread. Process exit
    flushes with a deadline (``exit_timeout``).
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
    ) -> None:
        if client is None and redis_url is None:
            redis_url = os.environ.get("AILEDGER_REDIS_URL", "redis://127.0.0.1:6379/0")
        self.stream = stream
        self._redis_url = redis_url
        self._client = client
        self.max_buffer = max_buffer
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_payload_bytes = max_payload_bytes
        self.exit_timeout = exit_timeout
        self._new_backoff = backoff
        self._logged = 0
        self._sent = 0
        self._dropped = 0
        self._send_errors = 0
        self._closed = False
        self._stop_deadline = float("inf")
        self._lost_at_close = 0
        self._reset_after_fork()
        _loggers.add(self)

    def _reset_after_fork(self) -> None:
        # A forked child must not share the parent's buffer, lock or socket:
        # the parent sends what it buffered; the child starts empty.
        self._buffer: deque[Any] = deque()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        if self._redis_url is not None:
            self._client = None

    # -- the caller's side -------------------------------------------------

    def log(self, **fields: Any) -> str:
        """Record one AI call; returns its event id. Never raises, never blocks."""
        try:
            event_id = fields.get("id")
            if event_id is None:
                event_id = fields["id"] = str(uuid4())
            fields["_logged_at"] = time.time()
            if "job_id" not in fields:
                job_id = current_job_id()
                if job_id is not None:
                    fields["job_id"] = job_id
            self._logged += 1
            if self._closed or len(self._buffer) >= self.max_buffer:
                self._dropped += 1
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
            return not self._buffer
        marker = _FlushMarker()
        self._buffer.append(marker)
        self._wake.set()
        return marker.done.wait(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Flush with a deadline and stop the sender thread. True if nothing was left behind."""
        timeout = self.exit_timeout if timeout is None else timeout
        if self._closed:
            return not self._buffer
        self._closed = True
        thread = self._thread
        if thread is None or not thread.is_alive():
            return not self._buffer
        self._stop_deadline = time.monotonic() + timeout
        self._buffer.append(_STOP)
        self._closing.set()
        self._wake.set()
        # The sender gives up at the deadline; allow it a moment past that to say so.
        thread.join(timeout + 0.5)
        if thread.is_alive():
            log.warning(
                "ailedger sender did not finish within %.1fs; %d events not sent",
                timeout,
                sum(1 for item in self._buffer if isinstance(item, dict)),
            )
            return False
        return self._lost_at_close == 0

    @property
    def stats(self) -> ProducerStats:
        buffered = sum(1 for item in list(self._buffer) if isinstance(item, dict))
        return ProducerStats(
            logged=self._logged,
            sent=self._sent,
            dropped=self._dropped,
            send_errors=self._send_errors,
            buffered=buffered,
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
            self._client = connect(self._redis_url or "")
        return self._client

    def _run(self) -> None:
        backoff = self._new_backoff()
        pending: list[tuple[str, bytes]] = []
        markers: list[_FlushMarker] = []
        stopping = False
        while True:
            if not pending and not stopping and not self._buffer:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
            stopping = self._take(pending, markers) or stopping or self._closed
            if pending:
                try:
                    self._send(pending)
                except Exception as exc:  # guarded: the loop never dies of one failure
                    self._send_errors += 1
                    if backoff.attempts == 0:
                        log.warning(
                            "ailedger cannot reach Redis (%s); %d events held, retrying",
                            exc,
                            len(pending) + len(self._buffer),
                        )
                    delay = backoff.next_delay()
                    if stopping:
                        remaining = self._stop_deadline - time.monotonic()
                        if remaining <= 0:
                            self._give_up(pending)
                            return
                        time.sleep(min(delay, remaining))
                        continue
                    # Only close() cuts a backoff short: callers' wake-ups must not
                    # turn an outage into a busy loop of reconnects.
                    self._closing.wait(delay)
                    continue
                if backoff.attempts:
                    log.warning("ailedger reached Redis again after %d attempts", backoff.attempts)
                backoff.reset()
                self._sent += len(pending)
                pending.clear()
            for marker in markers:
                marker.done.set()
            markers.clear()
            if stopping and not self._buffer:
                return

    def _give_up(self, pending: list[tuple[str, bytes]]) -> None:
        """Closing with Redis unreachable past the deadline: count and report what is lost."""
        lost = len(pending) + sum(1 for item in self._buffer if isinstance(item, dict))
        self._dropped += lost
        self._lost_at_close = lost
        pending.clear()
        self._buffer.clear()
        log.warning("ailedger closed with Redis unreachable; %d events were not sent", lost)

    def _take(self, pending: list[tuple[str, bytes]], markers: list[_FlushMarker]) -> bool:
        """Move up to one batch from the buffer into ``pending``; True if told to stop."""
        buffer = self._buffer
        while len(pending) < self.batch_size and buffer:
            item = buffer.popleft()
            if isinstance(item, dict):
                pending.append(encode_event(item, max_payload_bytes=self.max_payload_bytes))
            elif isinstance(item, _FlushMarker):
                markers.append(item)
                return False  # send what came before the marker, then release it
            elif item is _STOP:
                return True
        return False

    def _send(self, pending: list[tuple[str, bytes]]) -> None:
        pipe = self._redis().pipeline(transaction=False)
        for _event_id, payload in pending:
            pipe.xadd(self.stream, {EVENT_FIELD: payload, VERSION_FIELD: WIRE_VERSION})
        pipe.execute()


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

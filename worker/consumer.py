"""The worker: one consumer of the group, reading batches and storing them.

Two threads, each owning its own state. The reading loop (``run``) owns the
:class:`~worker.source.StreamSource` — what to read next, claims, housekeeping —
and the heartbeat; it validates, prices and scores each batch
(``worker/prepare.py``). The writer thread owns the
:class:`~worker.writer.BatchWriter`, which commits a batch and only then
acknowledges it. The reader prepares batch N+1 while the writer commits batch N,
so Python's work and Postgres's overlap. They share only :class:`~worker.heartbeat.Health`
(what each proved about the servers), which is locked.

A failure anywhere leaves the batch unacknowledged: it is retried, never lost.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any
from uuid import uuid4

import psycopg
import redis
import structlog

from producer.backoff import Backoff
from producer.constants import heartbeat_key
from worker.heartbeat import Health, WorkerCounters, beat
from worker.metrics import WorkerMetrics, worker_metrics
from worker.prepare import Entry, PreparedBatch, prepare_batch, raw_payload
from worker.pricing import PriceBook, load_overrides
from worker.settings import WorkerSettings
from worker.source import Delivery, StreamSource, renew_lease
from worker.store import Reject
from worker.writer import MIGRATE_ADVICE, BatchWriter

log = structlog.get_logger("ailedger.worker")

#: How often the reading loop refreshes the heartbeat, also while it waits for the writer.
HEARTBEAT_EVERY_S = 1.0
#: A burst worker with entries at live consumers looks again this often (one XPENDING):
#: the last of ``--processes N`` ends at most this long after the others' last commit.
BURST_WAIT_S = 0.05


def consumer_name() -> str:
    """A consumer name unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid4().hex[:6]}"


class Worker:
    """A consumer in the group: ``start()``/``stop(timeout)``/``join()``, or ``run()`` in place."""

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        consumer: str | None = None,
        burst: bool = False,
        pricebook: PriceBook | None = None,
        backoff: type[Backoff] = Backoff,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else worker_metrics()
        self.consumer = consumer or consumer_name()
        self.burst = burst
        #: Why a burst worker gave up (a server away past the deadline); None if it did not.
        self.failure: str | None = None
        self.log = log.bind(consumer=self.consumer, stream=settings.stream)
        self.health = Health(self.log, self.metrics)
        self.source = StreamSource(settings, self.consumer, metrics=self.metrics, burst=burst)
        self.writer = BatchWriter(
            settings,
            self.consumer,
            health=self.health,
            metrics=self.metrics,
            backoff=backoff,
            wait=self._wait,
        )
        self._pricebook = pricebook
        self._new_backoff = backoff
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_heartbeat = 0.0
        self._started_at = time.time()
        self._writer_thread = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="ailedger-writer"
        )
        self._inflight: Future[None] | None = None

    @property
    def counters(self) -> WorkerCounters:
        return self.writer.counters

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"ailedger-worker-{self.consumer}")
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the worker to finish its batch and exit; waits up to ``timeout`` if started."""
        self._stop.set()
        if self._thread is not None and timeout is not None:
            self.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is None:
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.log.warning("worker did not stop in time", timeout_s=timeout)
            return False
        return True

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Consume until stopped (or, in burst mode, until nothing is left)."""
        self.log.info("worker started", group=self.settings.group, burst=self.burst)
        backoff = self._new_backoff()
        try:
            while not self._stop.is_set():
                try:
                    if self._step():
                        break
                    self.health.recovered("redis", backoff)  # this iteration talked to Redis
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    self.health.went_down("redis", exc)
                    self.source.reset()
                    self._retry_later(backoff)
                except psycopg.OperationalError as exc:
                    self.health.went_down("postgres", exc)
                    self._retry_later(backoff)
                except redis.ResponseError as exc:
                    if "NOGROUP" in str(exc):  # stream or group deleted under us: recreate
                        self.source.reset()
                    self.log.exception("worker iteration failed; backing off")
                    self._retry_later(backoff)
                except Exception as exc:  # guarded: one bad iteration never kills the loop
                    self.health.last_error = repr(exc)[:300]
                    self.log.exception("worker iteration failed; backing off")
                    self._retry_later(backoff)
        finally:
            self._finish()

    def _step(self) -> bool:
        """One iteration of the reading loop; True when a burst worker is done."""
        self._heartbeat()
        if self.source.own_backlog:
            self._drain_inflight()  # never re-read what is being written
        delivery = self.source.next_batch()
        if delivery.entries:
            self._handle(delivery)
            return False
        self._drain_inflight()
        if not self.burst or self.source.own_backlog:
            return False
        return self._burst_done()

    def _burst_done(self) -> bool:
        """Drained only when no consumer holds entries: claim the departed, wait for the live."""
        waiting, departed = self.source.pending_elsewhere()
        if not waiting:
            return True
        if departed:
            claimed = self.source.claim_from_departed(departed)
            if claimed.entries:
                self._handle(claimed)
                return False
        self._stop.wait(BURST_WAIT_S)
        return False

    def _finish(self) -> None:
        try:
            self._drain_inflight()
        except Exception:
            # Not acknowledged, so not lost: the entries are re-read or claimed later.
            self.log.exception("last batch could not be stored; it stays pending")
        self._writer_thread.submit(self.writer.close).result()
        self._writer_thread.shutdown(wait=True)
        if self.burst and self.failure is None:
            # A drained burst leaves the stream trimmed, as a long-running worker would.
            self.source.housekeeping()
        self.source.close()
        counters = self.counters
        self.log.info(
            "worker stopped",
            batches=counters.batches,
            entries=counters.entries,
            inserted=counters.inserted,
            rejected=counters.rejected,
            failure=self.failure,
        )

    def _retry_later(self, backoff: Backoff) -> None:
        # Whatever this consumer was given and did not acknowledge is read again
        # first on the next iteration: a failed batch is retried, not abandoned.
        self.source.retry_own()
        self._wait(backoff)

    def _wait(self, backoff: Backoff) -> bool:
        """Sleep before the next attempt; True when the worker should stop instead.

        A burst worker gives up once a server has been away longer than
        ``burst_deadline_s``: a one-off drain must end, and say why.
        """
        since = self.health.down_since
        deadline = self.settings.burst_deadline_s
        if self.burst and since is not None and time.monotonic() - since > deadline:
            reasons = "; ".join(f"{k}: {v}" for k, v in self.health.reasons().items())
            self.failure = f"gave up after {deadline:g}s without a working server ({reasons})"
            self.log.error("burst worker giving up", reason=self.failure)
            self._stop.set()
            return True
        return self._stop.wait(backoff.next_delay())

    # -- handling --------------------------------------------------------------

    def _prices(self) -> PriceBook:
        if self._pricebook is None:
            self._pricebook = PriceBook(
                overrides_loader=self._load_overrides, ttl_s=self.settings.price_cache_ttl_s
            )
        return self._pricebook

    def _load_overrides(self) -> list[Any]:
        # Its own short connection: the batch connection belongs to the writer thread.
        with psycopg.connect(self.settings.database_url, connect_timeout=5) as conn:
            return load_overrides(conn)

    def _handle(self, delivery: Delivery) -> None:
        counts = delivery.counts
        entries = delivery.entries
        if counts and max(counts.values()) > self.settings.max_deliveries:
            self._drain_inflight()
            entries = self._handle_over_limit(entries, counts)
            if not entries:
                return
        started = time.perf_counter()
        # Prepared here while the writer thread commits the previous batch.
        batch = self._prepare(entries, counts)
        if batch is None:
            return
        self._drain_inflight()
        self._inflight = self._writer_thread.submit(self.writer.commit, batch, started)

    def _prepare(self, entries: list[Entry], counts: dict[bytes, int]) -> PreparedBatch | None:
        """Validate, price, score; waits out a Postgres outage (prices) holding the entries.

        Retrying here instead of re-reading them keeps an outage from counting as
        deliveries, which would end with good events dead-lettered as poison.
        """
        backoff = self._new_backoff()
        while True:
            try:
                batch = prepare_batch(
                    entries,
                    pricebook=self._prices(),
                    settings=self.settings,
                    delivery_counts=counts,
                )
            except psycopg.OperationalError as exc:
                self.health.went_down("postgres", exc)
            except psycopg.ProgrammingError as exc:  # price_overrides missing: not migrated
                self.health.store_not_ready(exc, MIGRATE_ADVICE)
            else:
                if backoff.attempts:
                    # Prices failed to load and now loaded: Postgres answered.
                    self.health.recovered("postgres", backoff)
                return batch
            renew_lease(self.source.client(), self.settings, self.consumer, [e[0] for e in entries])
            self._heartbeat(best_effort=True)
            if self._wait(backoff):
                return None

    def _drain_inflight(self) -> None:
        """Wait for the batch being written, beating meanwhile; re-raises what went wrong.

        The batch stays in flight until the writer is done with it, so that nothing
        being written is read again as this consumer's backlog.
        """
        inflight = self._inflight
        if inflight is None:
            return
        try:
            while True:
                try:
                    inflight.result(timeout=HEARTBEAT_EVERY_S)
                    return
                except FutureTimeout:
                    # The writer is waiting out an outage: stay visibly alive meanwhile.
                    self._heartbeat(best_effort=True)
        finally:
            if inflight.done():
                self._inflight = None

    def _on_writer(self, fn: Any, *args: Any) -> None:
        """Run ``fn`` on the writer thread (which owns the connections) and wait for it."""
        self._drain_inflight()
        self._inflight = self._writer_thread.submit(fn, *args)
        self._drain_inflight()

    def _handle_over_limit(self, entries: list[Entry], counts: dict[bytes, int]) -> list[Entry]:
        """Entries delivered too often: try each alone; dead-letter what still fails.

        An entry past twice the limit is dead-lettered untried: it has most likely
        killed the workers that took it. Returns the entries within the limit.
        """
        limit = self.settings.max_deliveries
        normal = []
        for entry in entries:
            delivered = counts.get(entry[0], 1)
            if delivered <= limit:
                normal.append(entry)
                continue
            last = self.health.last_error or "none seen: a worker died holding it"
            reason = (
                f"delivered {delivered} times without being stored (limit {limit});"
                f" last worker error: {last}"
            )
            if delivered <= 2 * limit:
                try:
                    self._store_alone(entry, counts)
                    continue
                except (redis.ConnectionError, redis.TimeoutError, psycopg.OperationalError):
                    raise  # a server away is not the entry's fault: retried, not dead-lettered
                except Exception as exc:
                    reason = f"failed alone after {delivered} deliveries: {exc!r}"[:1000]
            self._dead_letter_untried(entry, delivered, reason)
        return normal

    def _store_alone(self, entry: Entry, counts: dict[bytes, int]) -> None:
        started = time.perf_counter()
        batch = self._prepare([entry], counts)
        if batch is not None:
            self._on_writer(self.writer.commit, batch, started)

    def _dead_letter_untried(self, entry: Entry, delivered: int, reason: str) -> None:
        stream_id, fields = entry
        batch = PreparedBatch(
            rejects=[
                Reject(
                    stream_id=stream_id.decode(),
                    reason=reason,
                    raw=raw_payload(fields),
                    delivery_count=delivered,
                )
            ],
            ids=[stream_id],
        )
        self._on_writer(self.writer.dead_letter, batch)

    # -- health ----------------------------------------------------------------

    def _heartbeat(self, *, best_effort: bool = False) -> None:
        """Refresh this consumer's TTL key with its counters (reading loop only).

        ``best_effort``: while waiting out an outage, Redis being away too is not news.
        """
        now = time.monotonic()
        if now < self._next_heartbeat:
            return
        self._next_heartbeat = now + HEARTBEAT_EVERY_S
        record = beat(
            consumer=self.consumer,
            started_at=self._started_at,
            counters=self.counters,
            claimed=self.source.claimed,
            health=self.health,
        )
        try:
            self.source.client().set(
                heartbeat_key(self.settings.stream, self.consumer),
                record.encode(),
                ex=self.settings.heartbeat_ttl_s,
            )
        except redis.RedisError:
            if not best_effort:
                raise

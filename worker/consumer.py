"""The worker: one consumer of the group, reading batches and storing them.

Each iteration takes one batch — first this consumer's own unacknowledged
entries (a restart under the same name), then entries idle too long at other
consumers (XAUTOCLAIM: a killed worker's batch), then new ones (XREADGROUP >) —
validates, prices and scores it, writes rows and rejects in one transaction, and
only then acknowledges. A failure anywhere leaves the batch unacknowledged: it is
retried, never lost.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import orjson
import psycopg
import redis
import structlog

from producer.backoff import Backoff
from producer.connection import connect
from producer.constants import dead_letter_stream, heartbeat_key
from worker.metrics import WorkerMetrics, worker_metrics
from worker.prepare import Entry, PreparedBatch, prepare_batch, raw_payload
from worker.pricing import PriceBook, load_overrides
from worker.settings import WorkerSettings
from worker.store import Reject, Row, write_batch
from worker.trimming import remove_departed_consumers, trim_acknowledged

log = structlog.get_logger("ailedger.worker")

#: How long a burst worker waits for new entries before deciding the stream is drained.
BURST_BLOCK_MS = 200


@dataclass(slots=True)
class WorkerCounters:
    batches: int = 0
    entries: int = 0
    inserted: int = 0
    rejected: int = 0
    claimed: int = 0


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
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid4().hex[:6]}"
        self.burst = burst
        self.counters = WorkerCounters()
        self._pricebook = pricebook
        self._new_backoff = backoff
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._redis: redis.Redis | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._own_backlog = True
        self._next_claim = 0.0
        self._claim_cursor = "0-0"
        self._next_heartbeat = 0.0
        self._started_at = time.time()
        #: Servers this worker currently cannot reach ("redis", "postgres"). The writer
        #: thread and the reading loop both report: each reports only what it proved.
        self._down: set[str] = set()
        self._last_error: str | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ailedger-writer")
        self._inflight: Future[None] | None = None
        self.log = log.bind(consumer=self.consumer)

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
        self.log.info("worker started", stream=self.settings.stream, group=self.settings.group)
        backoff = self._new_backoff()
        try:
            while not self._stop.is_set():
                try:
                    self._heartbeat()
                    if self._own_backlog:
                        self._drain_inflight()  # never re-read what is being written
                    entries, redelivered = self._next_entries()
                    if entries:
                        self._handle(entries, redelivered=redelivered)
                    else:
                        self._drain_inflight()
                        if self.burst and not self._own_backlog:
                            break
                    self._recovered("redis", backoff)  # this iteration talked to Redis
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    self._went_down("redis", exc)
                    self._redis = None
                    self._retry_later(backoff)
                except psycopg.OperationalError as exc:
                    self._went_down("postgres", exc)
                    self._conn = None
                    self._retry_later(backoff)
                except redis.ResponseError as exc:
                    if "NOGROUP" in str(exc):  # stream or group deleted under us: recreate
                        self._redis = None
                    self.log.exception("worker iteration failed; backing off")
                    self._retry_later(backoff)
                except Exception as exc:  # guarded: one bad iteration never kills the loop
                    self._last_error = repr(exc)[:300]
                    self.log.exception("worker iteration failed; backing off")
                    self._retry_later(backoff)
        finally:
            try:
                self._drain_inflight()
            except Exception:
                # Not acknowledged, so not lost: the entries are re-read or claimed later.
                self.log.exception("last batch could not be stored; it stays pending")
            self._writer.shutdown(wait=True)
            if self.burst and self._redis is not None:
                # A drained burst leaves the stream trimmed, as a long-running worker would.
                with contextlib.suppress(redis.RedisError):
                    self._housekeeping(self._redis)
            self._close()
            self.log.info(
                "worker stopped",
                batches=self.counters.batches,
                entries=self.counters.entries,
                inserted=self.counters.inserted,
                rejected=self.counters.rejected,
            )

    def _retry_later(self, backoff: Backoff) -> None:
        # Whatever this consumer was given and did not acknowledge is read again
        # first on the next iteration: a failed batch is retried, not abandoned.
        self._own_backlog = True
        self._stop.wait(backoff.next_delay())

    # -- reading -------------------------------------------------------------

    def _client(self) -> redis.Redis:
        if self._redis is None:
            self._redis = connect(
                self.settings.redis_url,
                socket_timeout=self.settings.block_ms / 1000 + 10,
                connect_timeout=5,
            )
            self._ensure_group(self._redis)
        return self._redis

    def _ensure_group(self, client: redis.Redis) -> None:
        try:
            client.xgroup_create(self.settings.stream, self.settings.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _next_entries(self) -> tuple[list[Entry], bool]:
        """The next batch, and whether it was delivered before (own backlog, claimed)."""
        client = self._client()
        settings = self.settings
        if self._own_backlog:
            # Entries this consumer name was given before and never acknowledged.
            entries = self._read(client, "0", block=None)
            if entries:
                return entries, True
            self._own_backlog = False
        now = time.monotonic()
        if now >= self._next_claim:
            self._housekeeping(client)
            cursor, claimed, _deleted = client.xautoclaim(
                settings.stream,
                settings.group,
                self.consumer,
                min_idle_time=settings.claim_idle_ms,
                start_id=self._claim_cursor,
                count=settings.batch_size,
            )
            self._claim_cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
            if self._claim_cursor == "0-0":
                self._next_claim = now + settings.claim_every_s
            claimed = [(sid, fields) for sid, fields in claimed if fields is not None]
            if claimed:
                self.counters.claimed += len(claimed)
                self.metrics.claimed(len(claimed))
                self.log.info("claimed idle entries", count=len(claimed))
                return claimed, True
        block = BURST_BLOCK_MS if self.burst else settings.block_ms
        return self._read(client, ">", block=block), False

    def _housekeeping(self, client: redis.Redis) -> None:
        """Trim what every group acknowledged; forget consumers that left owning nothing."""
        settings = self.settings
        trimmed = trim_acknowledged(client, settings.stream)
        if trimmed:
            self.log.debug("stream trimmed", entries=trimmed)
        removed = remove_departed_consumers(
            client, settings.stream, settings.group, idle_ms=max(settings.claim_idle_ms, 60_000)
        )
        if removed:
            self.log.info("departed consumers removed", consumers=removed)

    def _delivery_counts(self, entries: list[Entry]) -> dict[bytes, int]:
        ids = [sid for sid, _ in entries]
        rows: list[dict[str, Any]] = self._client().xpending_range(
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

    def _handle(self, entries: list[Entry], *, redelivered: bool = False) -> None:
        counts = self._delivery_counts(entries) if redelivered else {}
        limit = self.settings.max_deliveries
        if counts and max(counts.values()) > limit:
            self._drain_inflight()
            entries = self._handle_over_limit(entries, counts)
            if not entries:
                return
        started = time.perf_counter()
        # Prepared here while the writer thread commits the previous batch: the
        # Python work of one overlaps Postgres' work on the other.
        batch = self._prepare(entries, counts)
        if batch is None:
            return
        self._drain_inflight()
        self._inflight = self._writer.submit(self._commit, batch, started)

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
                self._went_down("postgres", exc)
                self._renew_lease([sid for sid, _ in entries])
                self._beat_while_waiting()
                if self._stop.wait(backoff.next_delay()):
                    return None
                continue
            if backoff.attempts:
                # Prices failed to load and now loaded: Postgres answered.
                self._recovered("postgres", backoff)
            return batch

    def _drain_inflight(self) -> None:
        """Wait for the batch being written; re-raises what went wrong with it."""
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            inflight.result()

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
            reason = (
                f"delivered {delivered} times without being stored (limit {limit});"
                f" last worker error: {self._last_error or 'none seen: a worker died holding it'}"
            )
            if delivered <= 2 * limit:
                try:
                    self._store([entry], counts)
                    continue
                except (redis.ConnectionError, redis.TimeoutError, psycopg.OperationalError):
                    raise  # a server away is not the entry's fault: retried, not dead-lettered
                except Exception as exc:
                    reason = f"failed alone after {delivered} deliveries: {exc!r}"[:1000]
            self._dead_letter_untried(entry, delivered, reason)
        return normal

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
        if self._write(batch) is not None:
            self._acknowledge(batch)
            self.counters.rejected += 1

    def _store(self, entries: list[Entry], counts: dict[bytes, int]) -> None:
        """Prepare and commit in this thread (entries handled one at a time)."""
        started = time.perf_counter()
        batch = self._prepare(entries, counts)
        if batch is not None:
            self._commit(batch, started)

    def _commit(self, batch: PreparedBatch, started: float) -> None:
        """Write, then acknowledge; runs on the writer thread for ordinary batches."""
        write_started = time.perf_counter()
        inserted = self._write(batch)
        if inserted is None:
            return  # stopped while Postgres was away: the batch stays pending for later
        write_seconds = time.perf_counter() - write_started
        self._acknowledge(batch)
        counters = self.counters
        counters.batches += 1
        counters.entries += len(batch.ids)
        counters.inserted += inserted
        counters.rejected += len(batch.rejects)
        self.metrics.batch_stored(
            size=len(batch.ids),
            inserted=inserted,
            rejected=len(batch.rejects),
            seconds=write_seconds,
        )
        self.log.debug(
            "batch stored",
            batch_size=len(batch.ids),
            inserted=inserted,
            rejected=len(batch.rejects),
            unpriced=batch.unpriced,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )

    def _db(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(
                self.settings.database_url, autocommit=True, connect_timeout=5
            )
        return self._conn

    def _write(self, batch: PreparedBatch) -> int | None:
        """Commit the batch; retries while Postgres is away. None if stopped meanwhile."""
        backoff = self._new_backoff()
        while True:
            try:
                conn = self._db()
                try:
                    inserted = write_batch(
                        conn, batch.rows, batch.rejects, stream=self.settings.stream
                    )
                except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError):
                    # Some row Postgres refuses: find it, keep it as a reject, store the rest.
                    inserted = self._write_isolating(conn, batch)
            except psycopg.OperationalError as exc:
                self._went_down("postgres", exc)
                self._last_error = f"postgres: {exc}"[:300]
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                self._renew_lease(batch.ids)
                self._beat_while_waiting()
                if self._stop.wait(backoff.next_delay()):
                    return None
                continue
            self._recovered("postgres", backoff)
            return inserted

    def _renew_lease(self, ids: list[bytes]) -> None:
        """Keep a batch we are still working on from looking abandoned to other workers.

        XCLAIM ... JUSTID resets the entries' idle time without counting a delivery,
        so a long Postgres outage neither hands the batch around nor uses up its
        delivery limit.
        """
        if not ids:
            return
        with contextlib.suppress(redis.RedisError):
            self._client().xclaim(
                self.settings.stream,
                self.settings.group,
                self.consumer,
                min_idle_time=0,
                message_ids=list[Any](ids),
                justid=True,
            )

    def _write_isolating(self, conn: psycopg.Connection[Any], batch: PreparedBatch) -> int:
        stream = self.settings.stream
        source = {row[0]: src for row, src in zip(batch.rows, batch.sources, strict=True)}
        inserted = 0
        refused: list[Reject] = []

        def store(rows: list[Row]) -> None:
            nonlocal inserted
            try:
                inserted += write_batch(conn, rows, stream=stream)
            except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError) as exc:
                if len(rows) == 1:
                    stream_id, raw = source[rows[0][0]]
                    refused.append(
                        Reject(
                            stream_id=stream_id.decode(),
                            reason=f"Postgres refused the row: {str(exc).splitlines()[0]}",
                            raw=raw,
                            event_id=str(rows[0][0]),
                        )
                    )
                    return
                middle = len(rows) // 2
                store(rows[:middle])
                store(rows[middle:])

        store(batch.rows)
        batch.rejects.extend(refused)
        write_batch(conn, [], batch.rejects, stream=stream)
        self.log.warning("rows refused by Postgres were dead-lettered", count=len(refused))
        return inserted

    def _acknowledge(self, batch: PreparedBatch) -> None:
        settings = self.settings
        pipe = self._client().pipeline(transaction=False)
        dead = dead_letter_stream(settings.stream)
        for reject in batch.rejects:
            pipe.xadd(
                dead,
                {
                    b"stream_id": reject.stream_id,
                    b"reason": reject.reason,
                    b"raw": reject.raw,
                    b"consumer": self.consumer,
                },
            )
        if batch.ids:
            pipe.xack(settings.stream, settings.group, *batch.ids)
        pipe.execute()
        if batch.rejects:
            self.metrics.dead_lettered(len(batch.rejects))
            self.log.warning(
                "entries dead-lettered",
                count=len(batch.rejects),
                first_reason=batch.rejects[0].reason,
            )

    # -- health ----------------------------------------------------------------

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now < self._next_heartbeat:
            return
        self._next_heartbeat = now + 1.0
        counters = self.counters
        beat = {
            "consumer": self.consumer,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": self._started_at,
            "beat_at": time.time(),
            "batches": counters.batches,
            "entries": counters.entries,
            "inserted": counters.inserted,
            "rejected": counters.rejected,
            "claimed": counters.claimed,
            "down": sorted(self._down) or None,
        }
        self._client().set(
            heartbeat_key(self.settings.stream, self.consumer),
            orjson.dumps(beat),
            ex=self.settings.heartbeat_ttl_s,
        )

    def _beat_while_waiting(self) -> None:
        """Keep the heartbeat (and its "down" field) fresh through a long Postgres outage."""
        with contextlib.suppress(redis.RedisError):
            self._heartbeat()

    def _went_down(self, what: str, exc: Exception) -> None:
        self.metrics.backend_error(what)
        # Logged once per state change, not once per attempt.
        if what not in self._down:
            self._down.add(what)
            self.log.warning(f"{what} unavailable; retrying with backoff", error=str(exc))

    def _recovered(self, what: str, backoff: Backoff) -> None:
        """``what`` just answered a real request: log its return once, reset the backoff."""
        if what in self._down:
            self._down.discard(what)
            self.log.info(f"{what} is back", attempts=backoff.attempts)
        backoff.reset()

    def _close(self) -> None:
        if self._redis is not None:
            with contextlib.suppress(redis.RedisError):
                self._redis.delete(heartbeat_key(self.settings.stream, self.consumer))
            self._redis.close()
        if self._conn is not None:
            self._conn.close()

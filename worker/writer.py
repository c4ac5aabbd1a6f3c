"""Committing prepared batches, then acknowledging them: the worker's writer thread.

:class:`BatchWriter` owns its Postgres connection and its own Redis connection (for
XACK, the dead-letter stream and lease renewals); only the writer thread uses
them. The order is the promise: rows and rejects are committed in one transaction,
and only then are the entries acknowledged. A failure anywhere leaves the batch
unacknowledged, so it is retried, never lost.

What Postgres says decides what happens to a batch:

- it is away (``OperationalError``): wait with backoff, keeping the batch's lease;
- it refuses the schema (a missing table or column, no permission —
  ``ProgrammingError``): the store is not ready, which is no row's fault, so the
  batch is held the same way and the worker says once what to run;
- it refuses a row (``DataError``, ``IntegrityError``): the batch is split until
  that row stands alone, the row is dead-lettered with Postgres's reason and the
  rest is stored. A value psycopg cannot write for the binary COPY is raised as a
  ``DataError`` too (worker/store.py), and goes the same way with psycopg's reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
import redis

from producer.backoff import Backoff
from producer.connection import connect
from producer.constants import dead_letter_stream
from worker.heartbeat import Health, WorkerCounters
from worker.metrics import WorkerMetrics
from worker.prepare import PreparedBatch
from worker.settings import WorkerSettings
from worker.source import renew_lease
from worker.store import Reject, Row, write_batch

#: What the worker tells a person when the schema is not what it writes to.
MIGRATE_ADVICE = "run `ailedger migrate` against this database, then the batch is stored"

#: Errors that belong to one row: that row is dead-lettered, the rest is stored.
ROW_ERRORS = (psycopg.DataError, psycopg.IntegrityError)


def _refuser(exc: psycopg.Error) -> str:
    """Who refused a row: Postgres (its errors carry a SQLSTATE), or psycopg writing the COPY."""
    return "Postgres" if exc.sqlstate else "psycopg"


class StoreNotReady(Exception):
    """Postgres refused the batch for a reason no row is to blame for."""


class BatchWriter:
    """Writes batches for one worker; used by its writer thread only."""

    def __init__(
        self,
        settings: WorkerSettings,
        consumer: str,
        *,
        health: Health,
        metrics: WorkerMetrics,
        backoff: type[Backoff],
        wait: Callable[[Backoff], bool],
    ) -> None:
        self.settings = settings
        self.consumer = consumer
        self.counters = WorkerCounters()
        self.log = health.log
        self._health = health
        self._metrics = metrics
        self._new_backoff = backoff
        self._wait = wait
        self._conn: psycopg.Connection[Any] | None = None
        self._redis: redis.Redis | None = None

    def commit(self, batch: PreparedBatch, started: float) -> None:
        """Write, then acknowledge, then count."""
        write_started = time.perf_counter()
        inserted = self.write(batch)
        if inserted is None:
            return  # stopped while Postgres was away: the batch stays pending for later
        write_seconds = time.perf_counter() - write_started
        self.acknowledge(batch)
        counters = self.counters
        counters.batches += 1
        counters.entries += len(batch.ids)
        counters.inserted += inserted
        counters.rejected += len(batch.rejects)
        self._metrics.batch_stored(
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

    def dead_letter(self, batch: PreparedBatch) -> bool:
        """Store and acknowledge a batch of rejects only; False if stopped meanwhile."""
        if self.write(batch) is None:
            return False
        self.acknowledge(batch)
        self.counters.rejected += len(batch.rejects)
        return True

    def write(self, batch: PreparedBatch) -> int | None:
        """Commit the batch; retries while the store cannot take it. None if stopped meanwhile."""
        backoff = self._new_backoff()
        while True:
            try:
                inserted = self._write_once(batch)
            except psycopg.OperationalError as exc:
                self._health.went_down("postgres", exc)
                self._health.last_error = f"postgres: {exc}"[:300]
                self._forget_db()
            except StoreNotReady as exc:
                self._health.store_not_ready(exc.__cause__ or exc, MIGRATE_ADVICE)
                self._health.last_error = f"postgres: {exc}"[:300]
                self._forget_db()
            else:
                self._health.recovered("postgres", backoff)
                return inserted
            self._renew_lease(batch.ids)
            if self._wait(backoff):
                return None

    def acknowledge(self, batch: PreparedBatch) -> None:
        """Dead-letter the rejects on the stream and XACK the batch, in one round trip."""
        settings = self.settings
        try:
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
        except redis.RedisError:
            self._forget_redis()
            raise
        if batch.rejects:
            self._metrics.dead_lettered(len(batch.rejects))
            self.log.warning(
                "entries dead-lettered",
                count=len(batch.rejects),
                first_reason=batch.rejects[0].reason,
            )

    def close(self) -> None:
        self._forget_db()
        self._forget_redis()

    # -- Postgres ------------------------------------------------------------------

    def _write_once(self, batch: PreparedBatch) -> int:
        conn = self._db()
        try:
            return write_batch(
                conn, batch.rows, batch.rejects, stream=self.settings.stream, tallies=batch.tallies
            )
        except ROW_ERRORS:
            # Some row Postgres (or psycopg, writing it) refuses: find it, keep it as a reject,
            # store the rest.
            return self._write_isolating(conn, batch)
        except psycopg.ProgrammingError as exc:
            raise StoreNotReady(str(exc).splitlines()[0]) from exc

    def _write_isolating(self, conn: psycopg.Connection[Any], batch: PreparedBatch) -> int:
        stream = self.settings.stream
        source = {row.id: src for row, src in zip(batch.rows, batch.sources, strict=True)}
        inserted = 0
        refused: list[Reject] = []

        def store(rows: list[Row]) -> None:
            nonlocal inserted
            try:
                inserted += write_batch(conn, rows, stream=stream)
            except ROW_ERRORS as exc:
                if len(rows) == 1:
                    stream_id, raw = source[rows[0].id]
                    refused.append(
                        Reject(
                            stream_id=stream_id.decode(),
                            reason=f"{_refuser(exc)} refused the row: {str(exc).splitlines()[0]}",
                            raw=raw,
                            event_id=str(rows[0].id),
                        )
                    )
                    return
                middle = len(rows) // 2
                store(rows[:middle])
                store(rows[middle:])
            except psycopg.ProgrammingError as exc:
                raise StoreNotReady(str(exc).splitlines()[0]) from exc

        store(batch.rows)
        batch.rejects.extend(refused)
        write_batch(conn, [], batch.rejects, stream=stream)
        self.log.warning("rows refused by Postgres were dead-lettered", count=len(refused))
        return inserted

    def _db(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(
                self.settings.database_url, autocommit=True, connect_timeout=5
            )
        return self._conn

    def _forget_db(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    # -- Redis ---------------------------------------------------------------------

    def _client(self) -> redis.Redis:
        if self._redis is None:
            self._redis = connect(
                self.settings.redis_url,
                socket_timeout=10,
                connect_timeout=5,
                cluster=self.settings.redis_cluster,
                strict=True,  # as the reading loop's: an XACK must reach the shard's node
            )
        return self._redis

    def _forget_redis(self) -> None:
        if self._redis is not None:
            self._redis.close()
        self._redis = None

    def _renew_lease(self, ids: list[bytes]) -> None:
        try:
            client = self._client()
        except redis.RedisError:
            return
        renew_lease(client, self.settings, self.consumer, ids)

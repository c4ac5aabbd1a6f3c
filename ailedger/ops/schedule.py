"""Periodic maintenance on RQ: its CronScheduler enqueues, `ailedger jobs` workers run.

Registered on the stream's maintenance queue (``maintenance_queue(stream)``):

- :func:`evaluate_job` every ``alert_every_s`` (60 s): every budget and rule once,
  then the outbox;
- :func:`deliver_job` every ``outbox_every_s`` (15 s): the outbox alone, so a
  receiver that came back does not wait for the next evaluation;
- :func:`retention_job` daily (and at the scheduler's start);
- :func:`partitions_job` hourly: this month's partition of ai_call_logs and the next ones.

Two schedulers (or two ``ailedger jobs`` processes) may run at once: evaluation is
idempotent in the database (unique alert keys, ``ON CONFLICT DO NOTHING``) and delivery
locks each receiver with ``SKIP LOCKED``, so doubled jobs double nothing.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import structlog

from ailedger.settings import Settings

log = structlog.get_logger("ailedger.schedule")

DAY_S = 86_400
HOUR_S = 3_600


def _settings(flags: dict[str, Any]) -> Settings:
    # Only names travel in the job (it is stored in Redis): the servers and every secret
    # come from the `ailedger jobs` worker's own environment.
    return Settings(**flags)


def evaluate_job(**flags: Any) -> dict[str, int]:
    """Evaluate every budget and rule once, then deliver what is due."""
    from ailedger.ops.alerts import evaluate
    from ailedger.ops.outbox import deliver

    settings = _settings(flags)
    with psycopg.connect(settings.database_url, autocommit=True, connect_timeout=10) as conn:
        report = evaluate(conn, settings)
        sent = deliver(conn, settings)
    return {"fired": len(report.fired), "resolved": len(report.resolved),
            "delivered": sent.delivered}  # fmt: skip


def deliver_job(**flags: Any) -> int:
    """Deliver the outbox's due messages; returns how many arrived."""
    from ailedger.ops.outbox import deliver

    settings = _settings(flags)
    with psycopg.connect(settings.database_url, autocommit=True, connect_timeout=10) as conn:
        return deliver(conn, settings).delivered


def retention_job(**flags: Any) -> list[str]:
    """Apply the retention policies once."""
    from ailedger.ops.retention import run_retention

    settings = _settings(flags)
    with psycopg.connect(settings.database_url, autocommit=True, connect_timeout=10) as conn:
        return run_retention(conn, settings).lines()


def partitions_job(**flags: Any) -> list[str]:
    """Create the monthly partitions of ai_call_logs that are missing."""
    from ailedger.ops.partitions import ensure_partitions

    settings = _settings(flags)
    with psycopg.connect(settings.database_url, autocommit=True, connect_timeout=10) as conn:
        return ensure_partitions(conn, months_ahead=settings.partition_months_ahead).lines()


def job_flags(settings: Settings) -> dict[str, Any]:
    """What a scheduled job carries: names only, never a URL (it may hold a password)."""
    return {"stream": settings.stream, "group": settings.group}


def build_scheduler(connection: Any, settings: Settings) -> Any:
    """RQ's CronScheduler with ailedger's periodic jobs registered."""
    from rq.cron import CronScheduler

    from producer.constants import maintenance_queue

    scheduler = CronScheduler(connection=connection, name=f"ailedger:{settings.stream}")
    queue = maintenance_queue(settings.stream)
    flags = job_flags(settings)
    for func, every, timeout in (
        (evaluate_job, settings.alert_every_s, 300),
        (deliver_job, settings.outbox_every_s, 300),
        (retention_job, DAY_S, 6 * 3600),
        (partitions_job, HOUR_S, 3600),
    ):
        scheduler.register(
            func, queue, kwargs=flags, interval=every, job_timeout=timeout,
            # A job not started within its interval is stale: the next one replaces it.
            ttl=max(every, 60),
            # Named after the deployment: RQ keeps each name's history (rq:cron_job:<name>:jobs),
            # and by default names it after the function, shared by every deployment on a Redis.
            name=f"{settings.stream}:{func.__name__}",
        )  # fmt: skip
    return scheduler


def _run_scheduler(settings: Settings) -> None:
    from producer.connection import connect

    build_scheduler(connect(settings.redis_url, socket_timeout=30), settings).start()


@contextmanager
def scheduled(settings: Settings, *, enabled: bool = True, burst: bool = False) -> Iterator[None]:
    """Run the CronScheduler next to an RQ worker for the duration of the block.

    In burst mode the due jobs (all of them, on a first run) are enqueued once, for the
    worker to run before it exits; otherwise the scheduler runs in its own process
    (it installs signal handlers, which only a main thread may), stopped on the way out.
    """
    if not enabled:
        yield
        return
    if burst:
        from producer.connection import connect

        build_scheduler(connect(settings.redis_url), settings).enqueue_jobs()
        yield
        return
    process = multiprocessing.get_context("spawn").Process(
        target=_run_scheduler, args=(settings,), name="ailedger-cron", daemon=True
    )
    process.start()
    try:
        yield
    finally:
        process.terminate()
        process.join(10)
        if process.is_alive():
            log.warning("cron scheduler did not stop within 10 s", pid=process.pid)

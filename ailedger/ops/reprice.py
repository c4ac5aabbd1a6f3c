"""Re-pricing stored calls after prices change: fill unpriced costs, correct wrong ones.

Runs in the background as an RQ job on the maintenance queue (``ailedger reprice``
enqueues, ``ailedger jobs`` works the queue), or inline with ``--now``. A queued job
carries only its filters: the jobs worker reprices the database of its own settings
(``AILEDGER_DATABASE_URL``), so no database URL, and no password, is ever put in Redis. Costs the
service reported itself are never touched. Rows are walked in id order, a chunk
per transaction, so a long run holds no long locks and can be stopped and rerun.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
import structlog

from worker.pricing import PriceBook, load_overrides
from worker.settings import WorkerSettings

log = structlog.get_logger("ailedger.reprice")

_SELECT = """
SELECT id, timestamp, provider, model, input_tokens, output_tokens,
       cache_read_tokens, cache_write_tokens, cache_write_1h_tokens, image_id,
       error_message IS NOT NULL, cost, cost_source
FROM ai_call_logs
WHERE cost_source <> 'reported' AND id > %(after)s {filters}
ORDER BY id
LIMIT %(chunk)s
"""


@dataclass(slots=True)
class RepriceResult:
    examined: int = 0
    changed: int = 0
    newly_priced: int = 0
    still_unpriced: int = 0


def reprice(
    database_url: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    models: Sequence[str] = (),
    only_unpriced: bool = False,
    chunk: int = 5_000,
) -> RepriceResult:
    """Recompute costs with today's catalog and overrides; returns what changed."""
    filters = []
    params: dict[str, Any] = {"chunk": chunk, "after": UUID(int=0)}
    if since is not None:
        filters.append("AND timestamp >= %(since)s")
        params["since"] = since
    if until is not None:
        filters.append("AND timestamp < %(until)s")
        params["until"] = until
    if models:
        filters.append("AND model = ANY(%(models)s)")
        params["models"] = list(models)
    if only_unpriced:
        filters.append("AND cost_source = 'unpriced'")
    query = _SELECT.format(filters=" ".join(filters))
    result = RepriceResult()
    with psycopg.connect(database_url, autocommit=True) as conn:
        book = PriceBook(overrides_loader=lambda: load_overrides(conn), ttl_s=3600)
        while True:
            rows = conn.execute(query.encode(), params).fetchall()
            if not rows:
                break
            params["after"] = rows[-1][0]
            changes = []
            for row in rows:
                (_id, ts, provider, model, tin, tout, tcr, tcw, tcw1h, image_id, failed, cost,
                 source) = row  # fmt: skip
                priced = book.price(
                    provider,
                    model,
                    ts,
                    input_tokens=tin,
                    output_tokens=tout,
                    cache_read_tokens=tcr,
                    cache_write_tokens=tcw,
                    cache_write_1h_tokens=tcw1h,
                    has_image=image_id is not None,
                    failed=failed,
                )
                result.examined += 1
                if priced.cost is None:
                    result.still_unpriced += 1
                if (priced.cost, priced.source) != (cost, source):
                    changes.append((row[0], priced.cost, priced.source))
                    if source == "unpriced" and priced.cost is not None:
                        result.newly_priced += 1
            if changes:
                _apply(conn, changes)
                result.changed += len(changes)
    log.info(
        "reprice finished",
        examined=result.examined,
        changed=result.changed,
        newly_priced=result.newly_priced,
        still_unpriced=result.still_unpriced,
    )
    return result


def _apply(conn: psycopg.Connection[Any], changes: Sequence[tuple[Any, Any, str]]) -> None:
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS ailedger_reprice"
            " (id UUID PRIMARY KEY, cost NUMERIC(18, 12), cost_source TEXT)"
            " ON COMMIT DELETE ROWS"
        )
        with cur.copy("COPY ailedger_reprice (id, cost, cost_source) FROM STDIN") as copy:
            for change in changes:
                copy.write_row(change)
        cur.execute(
            "UPDATE ai_call_logs t SET cost = s.cost, cost_source = s.cost_source"
            " FROM ailedger_reprice s WHERE t.id = s.id"
        )


def enqueue_reprice(settings: WorkerSettings, **filters: Any) -> str:
    """Queue a reprice on the deployment's maintenance queue; returns the RQ job id.

    Only the filters go into the job: the jobs worker brings the database itself.
    """
    from rq import Queue

    from producer.connection import connect
    from producer.constants import maintenance_queue

    queue = Queue(maintenance_queue(settings.stream), connection=connect(settings.redis_url))
    job = queue.enqueue(reprice_queued, job_timeout=6 * 3600, **filters)
    return str(job.id)


def reprice_queued(**filters: Any) -> RepriceResult:
    """The queued job: :func:`reprice` on the database of the jobs worker's own settings."""
    from ailedger.settings import Settings

    return reprice(Settings().database_url, **filters)

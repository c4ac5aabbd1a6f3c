"""The metrics API (`ailedger serve`): AI costs and quality for the admin dashboard.

Admin endpoints need the bearer token (``AILEDGER_API_TOKEN``); without one they
answer loopback clients only. The API reads Postgres as the read-only role
``ailedger_reader`` (sql/005_reader_role.sql), each request in one snapshot.
``/api/admin/ai-metrics`` reads the rollups, never the raw table; the per-job and
per-image endpoints read raw rows through their indexes.
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import orjson
import psycopg
import redis
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import ConnectionPool, PoolTimeout

from ailedger.api import budgets, costs, dashboard, jobs, live, rollups, whatif
from ailedger.api import models as m
from ailedger.api.cors import ElementCors, parse_origins
from ailedger.api.figures import group_cost
from ailedger.api.paths import MAX_OFFSET, Moment, Stored
from ailedger.ingest.routes import router as ingest_router
from ailedger.ops.status import queue_status
from ailedger.settings import Settings
from ailedger.settings import reader_url as login_as
from producer.connection import connect
from worker.event import MAX_KEY

#: The most timeline buckets one request may ask for (e.g. 5000 minutes = 3.5 days).
MAX_BUCKETS = 5_000
#: The error answers besides FastAPI's own 422 (documented in the OpenAPI schema too).
ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": m.ErrorMessage, "description": "Missing or wrong bearer token."},
    503: {"model": m.ErrorMessage, "description": "Database unavailable or not migrated."},
}
#: Module level: endpoint annotations are strings (PEP 563), resolved in this namespace.
_bearer = HTTPBearer(auto_error=False, description="AILEDGER_API_TOKEN")
_BUCKET_SPAN = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(days=7),
    "month": timedelta(days=28),
}


def reader_url(settings: Settings) -> str:
    """Where the API connects: ``api_database_url``, else the database as the reader role."""
    if settings.api_database_url:
        return settings.api_database_url
    return login_as(settings.database_url, settings.api_role, settings.reader_secret())


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Backends:
    """The API's connections, opened on first use so the API starts while a server is down."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._redis: redis.Redis | None = None

    def pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        with self._lock:
            if self._pool is None:
                self._pool = ConnectionPool(
                    reader_url(self.settings),
                    min_size=1,
                    max_size=4,
                    timeout=5.0,
                    kwargs={
                        "autocommit": True,
                        "connect_timeout": 5,
                        "options": "-c TimeZone=UTC",
                    },
                    configure=_snapshot,
                    open=False,
                    name="ailedger-api",
                )
                self._pool.open(wait=False)
            return self._pool

    def redis(self) -> redis.Redis:
        with self._lock:
            if self._redis is None:
                self._redis = connect(
                    self.settings.redis_url, socket_timeout=2.0, connect_timeout=2.0
                )
            return self._redis

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._redis is not None:
            self._redis.close()


def _snapshot(conn: psycopg.Connection[Any]) -> None:
    # Every figure of one answer comes from the same snapshot, even while workers insert.
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ


def create_app(settings: Settings) -> FastAPI:
    """The FastAPI application; ``backends`` are on ``app.state.backends``."""
    backends = Backends(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        yield
        backends.close()

    app = FastAPI(
        title="ailedger",
        summary="What the platform's AI calls cost, how good they are, and the queue behind them.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.backends = backends
    app.include_router(ingest_router)
    token = settings.api_token.get_secret_value() if settings.api_token else None

    def admin(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if token is None:
            client = request.client.host if request.client else ""
            if is_loopback(client):
                return
            raise _unauthorized("no API token is configured: admin endpoints answer loopback only")
        if credentials is None:
            raise _unauthorized("missing bearer token: send Authorization: Bearer <token>")
        if not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
            raise _unauthorized("wrong bearer token")

    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(PoolTimeout)
    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            status_code=503,
            content={"detail": f"database unavailable: {str(exc).splitlines()[0]}"},
        )

    @app.exception_handler(psycopg.errors.UndefinedTable)
    @app.exception_handler(psycopg.errors.UndefinedFunction)
    @app.exception_handler(psycopg.errors.InsufficientPrivilege)
    async def schema_not_ready(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            status_code=503,
            content={
                "detail": f"database not ready for the API: {str(exc).splitlines()[0]}; "
                "run `ailedger migrate` (it creates the rollups and grants the reader role)"
            },
        )

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: the API answers and reaches its database."""
        with backends.pool().connection() as conn:
            conn.execute("SELECT 1")
        return {"status": "ok"}

    @app.get(
        "/api/admin/ai-metrics",
        response_model=m.AIMetrics,
        dependencies=[Depends(admin)],
        tags=["admin"],
        responses=ADMIN_ERRORS,
    )
    def ai_metrics(
        *,
        start: Annotated[
            Moment | None,
            Query(alias="from", description="ISO 8601 or Unix time; default: 24 h before `to`."),
        ] = None,
        end: Annotated[
            Moment | None, Query(alias="to", description="ISO 8601 or Unix time; default: now.")
        ] = None,
        bucket: Annotated[
            str | None,
            Query(
                pattern=f"^({'|'.join(rollups.BUCKETS)})$",
                description="Timeline bucket; default: by range (minute ≤ 6 h, hour ≤ 14 d).",
            ),
        ] = None,
        # Lists without a null branch: in a query string every value is text, so only a
        # plain array of strings documents what the API accepts.
        task: Annotated[list[Stored], Query(default_factory=list, description="Only these tasks.")],
        model: Annotated[
            list[Stored], Query(default_factory=list, description="Only these models.")
        ],
    ) -> Response:
        """Totals, cost over time, per model and per task, confidence, fallbacks, queue depth."""
        lo, hi, unit = _range(start, end, bucket)
        everything = rollups.cover(lo, hi)
        timeline_cover = rollups.cover(lo, hi, coarsest=unit if unit in _GRAIN_OF else "day")
        with backends.pool().connection() as conn, conn.transaction():
            bounds = rollups.latency_bounds(conn)
            tallies = rollups.read_tallies(
                conn, everything, len(bounds) + 1, tasks=task, models=model
            )
            points = rollups.read_timeline(conn, timeline_cover, unit, tasks=task, models=model)
            reasons = rollups.read_fallback_reasons(conn, everything, tasks=task, models=model)
        queue, queue_error = _queue(backends, settings)
        body = _metrics(lo, hi, unit, task or None, model or None, bounds, tallies, points, reasons)
        body.update(queue=queue, queue_error=queue_error)
        # Built as plain data and encoded once: a long timeline made of models, validated
        # again on the way out, cost more than all the queries. The shape is m.AIMetrics.
        return Response(
            orjson.dumps(body, default=_exact, option=orjson.OPT_UTC_Z),
            media_type="application/json",
        )

    # `:key`: job keys and image ids may hold any text, slashes (S3 keys, paths) included.
    @app.get(
        "/api/admin/jobs/{job_id:key}/ai-costs",
        response_model=m.JobCosts,
        dependencies=[Depends(admin)],
        tags=["admin"],
        responses=ADMIN_ERRORS,
    )
    def job_costs(
        job_id: Annotated[
            Stored,
            Path(
                max_length=MAX_KEY,
                description="The processing job (PDF upload): its UUID, or the key the service"
                " logged it with (42, upload-42).",
            ),
        ],
        offset: Annotated[
            int, Query(ge=0, le=MAX_OFFSET, description="Skip this many calls (polling).")
        ] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1_000,
    ) -> m.JobCosts:
        """Every AI call of a job in order, with running and final totals."""
        with backends.pool().connection() as conn:
            return costs.job_costs(conn, job_id, offset=offset, limit=limit)

    @app.get(
        "/api/admin/images/{image_id:key}/ai-costs",
        response_model=m.ImageCosts,
        dependencies=[Depends(admin)],
        tags=["admin"],
        responses=ADMIN_ERRORS,
    )
    def image_costs(
        image_id: Annotated[Stored, Path(max_length=MAX_KEY)],
    ) -> m.ImageCosts:
        """Cost per step (embedding, vision analysis, validation, …) of one image, and the total."""
        with backends.pool().connection() as conn:
            return costs.image_costs(conn, image_id)

    app.include_router(budgets.router, dependencies=[Depends(admin)], responses=ADMIN_ERRORS)
    for reads in (jobs.router, live.router, whatif.router):
        app.include_router(reads, dependencies=[Depends(admin)], responses=ADMIN_ERRORS)
    dashboard.mount(app)
    origins = parse_origins(settings.api_cors_origins)
    if origins:
        app.add_middleware(ElementCors, origins=origins)
    return app


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status_code=401, detail=message, headers={"WWW-Authenticate": "Bearer"})


_GRAIN_OF = {"minute", "hour", "day"}


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _range(
    start: datetime | None, end: datetime | None, bucket: str | None
) -> tuple[datetime, datetime, str]:
    """The range rounded to whole minutes and the timeline unit; 422 when they make no sense."""
    try:
        hi = rollups.ceil_time(_utc(end) if end else datetime.now(UTC), "minute")
        lo = rollups.floor_time(_utc(start) if start else hi - timedelta(days=1), "minute")
        if lo >= hi:
            raise _invalid("from", "`from` must be before `to`", start)
        span = hi - lo
        unit = bucket or (
            "minute"
            if span <= timedelta(hours=6)
            else "hour"
            if span <= timedelta(days=14)
            else "day"
        )
        # The first and the last timeline bucket must exist on the calendar too.
        rollups.next_time(rollups.floor_time(hi, unit), unit)
        rollups.floor_time(lo, unit)
    except (OverflowError, ValueError) as exc:
        raise _invalid("from", f"from/to out of range: {exc}", start) from None
    buckets = span / _BUCKET_SPAN[unit]
    if buckets > MAX_BUCKETS:
        raise _invalid(
            "bucket",
            f"the range holds {buckets:.0f} {unit} buckets, over the limit of {MAX_BUCKETS}: "
            "ask for a coarser bucket or a shorter range",
            bucket,
        )
    return lo, hi, unit


def _invalid(parameter: str, message: str, value: Any) -> RequestValidationError:
    """A 422 in FastAPI's own error shape (``detail`` is a list), as the schema documents."""
    shown = value.isoformat() if isinstance(value, datetime) else value
    error = {"type": "value_error", "loc": ("query", parameter), "msg": message, "input": shown}
    return RequestValidationError([error])


def _exact(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)  # costs stay exact: a JSON string, never a float
    raise TypeError(f"cannot encode {type(value).__name__}")


def _queue(backends: Backends, settings: Settings) -> tuple[dict[str, Any] | None, str | None]:
    try:
        status = queue_status(backends.redis(), settings)
    except redis.RedisError as exc:
        return None, f"Redis unavailable: {exc}"
    depth = {
        "length": status.length,
        "lag": status.lag,
        "pending": status.pending,
        "oldest_pending_age_s": status.oldest_pending_age_s,
        "dead_letter": status.dead_letter,
        "workers_alive": sum(1 for c in status.consumers if c.alive),
        "ok": status.ok,
        "verdict": status.verdict,
    }
    return depth, None


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _stats(tally: rollups.Tally, bounds: tuple[int, ...]) -> dict[str, Any]:
    return {
        "calls": tally.calls,
        "input_tokens": tally.input_tokens,
        "output_tokens": tally.output_tokens,
        "cache_read_tokens": tally.cache_read_tokens,
        "cache_write_tokens": tally.cache_write_tokens,
        "cache_write_1h_tokens": tally.cache_write_1h_tokens,
        "tokens": tally.tokens,
        "cost": group_cost(tally.cost, tally.calls, tally.unpriced),
        "unpriced_calls": tally.unpriced,
        "no_usage_calls": tally.no_usage,
        "errors": tally.errors,
        "error_rate": _rate(tally.errors, tally.calls),
        "fallbacks": tally.fallbacks,
        "fallback_rate": _rate(tally.fallbacks, tally.calls),
        "latency_ms": {
            "mean": tally.latency_sum_ms / tally.latency_count if tally.latency_count else None,
            "p50": tally.latency_percentile(0.50, bounds),
            "p95": tally.latency_percentile(0.95, bounds),
            "p99": tally.latency_percentile(0.99, bounds),
            "max": tally.latency_max_ms if tally.latency_count else None,
        },
        "confidence_mean": (
            float(tally.confidence_sum / tally.confidence_count) if tally.confidence_count else None
        ),
        "scored_calls": tally.confidence_count,
    }


def _metrics(
    lo: datetime,
    hi: datetime,
    unit: str,
    tasks: list[str] | None,
    models: list[str] | None,
    bounds: tuple[int, ...],
    tallies: dict[rollups.Key, rollups.Tally],
    points: list[tuple[datetime, str, int, int, Decimal, int]],
    reasons: list[tuple[str, int]],
) -> dict[str, Any]:
    """The answer of /api/admin/ai-metrics (without the queue), shaped as m.AIMetrics."""
    total = rollups.Tally()
    by_model: dict[str, rollups.Tally] = defaultdict(rollups.Tally)
    providers: dict[str, set[str]] = defaultdict(set)
    by_task: dict[str, rollups.Tally] = defaultdict(rollups.Tally)
    for (task, model, provider), tally in tallies.items():
        total.add(tally)
        by_model[model].add(tally)
        by_task[task].add(tally)
        if provider:
            providers[model].add(provider)
    timeline: dict[datetime, dict[str, Any]] = {
        start: {
            "start": start,
            "calls": 0,
            "tokens": 0,
            "cost": Decimal(0),
            "unpriced_calls": 0,
            "by_model": {},
        }
        for start in _bucket_starts(lo, hi, unit)
    }
    for start, model, calls, tokens, cost, unpriced in points:
        point = timeline[start]
        point["calls"] += calls
        point["tokens"] += tokens
        point["cost"] += cost
        point["unpriced_calls"] += unpriced
        point["by_model"][model] = {
            "calls": calls,
            "tokens": tokens,
            "cost": group_cost(cost, calls, unpriced),
            "unpriced_calls": unpriced,
        }
    for point in timeline.values():
        point["cost"] = group_cost(point["cost"], point["calls"], point["unpriced_calls"])
    hist = total.confidence_hist or [0] * rollups.CONFIDENCE_BINS
    return {
        "range": {"from": lo, "to": hi, "bucket": unit, "tasks": tasks, "models": models},
        "totals": _stats(total, bounds),
        "timeline": list(timeline.values()),
        "by_model": [
            {"model": name, "providers": sorted(providers[name]), **_stats(t, bounds)}
            for name, t in sorted(by_model.items(), key=lambda kv: (-kv[1].cost, kv[0]))
        ],
        "by_task": [
            {"task": name, **_stats(t, bounds)}
            for name, t in sorted(by_task.items(), key=lambda kv: (-kv[1].cost, kv[0]))
        ],
        "confidence_histogram": [
            {"low": low, "high": high, "calls": count}
            for (low, high), count in zip(rollups.confidence_bins(), hist, strict=True)
        ],
        "top_fallback_reasons": [{"reason": r, "calls": c} for r, c in reasons],
        "percentile_note": m.PERCENTILE_NOTE,
    }


def _bucket_starts(lo: datetime, hi: datetime, unit: str) -> Iterator[datetime]:
    start = rollups.floor_time(lo, unit)
    while start < hi:
        yield start
        start = rollups.next_time(start, unit)

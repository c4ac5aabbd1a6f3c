"""The commands of ``ailedger``: each a thin shell over library calls."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ailedger.cli.options import (
    DatabaseUrl,
    Group,
    RedisUrl,
    Stream,
    console,
)
from ailedger.cli.options import (
    env_help as _env,
)
from ailedger.cli.options import settings_from as _settings
from ailedger.cli.partitions import partitions_app
from ailedger.cli.replay import dlq_app, spool_app
from ailedger.cli.spend import alerts_app, budget_app, retention_app
from ailedger.settings import Settings, hide_password
from worker.errors import InvalidInput
from worker.logs import configure_logging

app = typer.Typer(
    name="ailedger",
    help="Record every AI call: tokens, cost, latency, confidence, fallbacks, per job.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.command()
def migrate(database_url: DatabaseUrl = None) -> None:
    """Create the database if missing and apply the migrations not yet applied."""
    from ailedger.ops.migrate import migrate as apply

    configure_logging()
    settings = _settings(database_url=database_url)
    applied = apply(
        settings.database_url,
        reader_password=settings.reader_secret(),
        reader_role=settings.api_role,
    )
    console.print(
        f"applied {len(applied)} migration(s): {', '.join(applied)}"
        if applied
        else "schema is up to date"
    )


@app.command()
def worker(
    processes: Annotated[
        int, typer.Option("--processes", "-p", min=1, help="Worker processes")
    ] = 1,
    burst: Annotated[bool, typer.Option("--burst", help="Exit once the stream is drained")] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Exit 0 if a worker on this host has a live heartbeat, else 1"
        ),
    ] = False,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size", min=1, help=_env("Entries per read and per COPY", "batch_size")
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            help=_env("Serve Prometheus /metrics on this port", "metrics_port", "off"),
        ),
    ] = None,
    redis_url: RedisUrl = None,
    database_url: DatabaseUrl = None,
    stream: Stream = None,
    group: Group = None,
) -> None:
    """Consume the stream: validate, price, score and store events in batches."""
    from ailedger.ops.prometheus import QueueCollector
    from worker.supervisor import run_workers

    configure_logging()
    settings = _settings(
        redis_url=redis_url,
        database_url=database_url,
        stream=stream,
        group=group,
        batch_size=batch_size,
        metrics_port=metrics_port,
    )
    if check:
        _health_check(settings, "worker")
    collectors = [QueueCollector(settings)] if settings.metrics_port else []
    raise typer.Exit(
        run_workers(
            settings,
            processes=processes,
            burst=burst,
            metrics_collectors=collectors,
            own_process=True,
        )
    )


@app.command()
def demo(
    events: Annotated[
        int, typer.Option("--events", "-n", min=1, help="Events to generate")
    ] = 20_000,
    processes: Annotated[
        int, typer.Option("--processes", "-p", min=1, help="Worker processes storing the calls")
    ] = 2,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help=_env("Where embedded servers keep their data", "data_dir")),
    ] = None,
    serve: Annotated[
        bool | None,
        typer.Option(
            "--serve/--no-serve",
            help="Then serve the dashboard on 127.0.0.1 with a fresh token until Ctrl-C"
            " [default: serve when the output is a terminal]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Generate a day of realistic platform traffic, show what it cost, then the dashboard."""
    from ailedger.extras import require

    require("demo")
    from ailedger.demo.run import run_demo

    configure_logging(level="WARNING")
    settings = _settings(data_dir=data_dir)
    serve = sys.stdout.isatty() if serve is None else serve
    summary = run_demo(settings, events=events, processes=processes, console=console, serve=serve)
    if not summary.complete:
        raise typer.Exit(1)


def _health_check(settings: Settings, kind: str) -> None:
    """End the command: 0 if a ``kind`` worker is alive on this host, 1 if not (a healthcheck)."""
    from ailedger.ops.health import jobs_workers_alive_here, workers_alive_here
    from producer.connection import connect

    client = connect(settings.redis_url, socket_timeout=5.0, connect_timeout=5.0)
    count = (workers_alive_here if kind == "worker" else jobs_workers_alive_here)(
        client, settings.stream
    )
    console.print(f"{count} {kind} process(es) alive on this host", markup=False)
    raise typer.Exit(0 if count else 1)


@app.command()
def reprice(
    since: Annotated[
        datetime | None, typer.Option("--since", help="Only calls at or after (ISO date/time)")
    ] = None,
    until: Annotated[datetime | None, typer.Option("--until", help="Only calls before")] = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", help="Only this model (repeatable)")
    ] = None,
    only_unpriced: Annotated[
        bool, typer.Option("--unpriced-only", help="Only fill costs that are missing")
    ] = False,
    now: Annotated[bool, typer.Option("--now", help="Run here instead of queueing")] = False,
    redis_url: RedisUrl = None,
    database_url: DatabaseUrl = None,
    stream: Stream = None,
) -> None:
    """Recompute stored costs after prices change (queued for `ailedger jobs`)."""
    from ailedger.ops.reprice import enqueue_reprice
    from ailedger.ops.reprice import reprice as run_reprice

    configure_logging()
    settings = _settings(redis_url=redis_url, database_url=database_url, stream=stream)
    start, end = _utc(since), _utc(until)
    if start is not None and end is not None and start >= end:
        raise InvalidInput(
            f"--since {start.isoformat()} is not before --until {end.isoformat()}: no call "
            "could match; swap them or widen the range"
        )
    filters: dict[str, Any] = {
        "since": start,
        "until": end,
        "models": model or (),
        "only_unpriced": only_unpriced,
    }
    if now:
        result = run_reprice(settings.database_url, **filters)
        console.print(
            f"examined {result.examined}, changed {result.changed}"
            f" ({result.newly_priced} newly priced), {result.still_unpriced} still unpriced"
        )
        return
    job_id = enqueue_reprice(settings, **filters)
    console.print(f"queued reprice job {job_id}; `ailedger jobs` runs it")


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@app.command()
def jobs(
    burst: Annotated[bool, typer.Option("--burst", help="Exit once the queue is empty")] = False,
    schedule: Annotated[
        bool,
        typer.Option(help="Also schedule alerts, outbox delivery, retention (RQ CronScheduler)"),
    ] = True,
    check: Annotated[
        bool,
        typer.Option("--check", help="Exit 0 if a jobs worker runs on this host, else 1"),
    ] = False,
    redis_url: RedisUrl = None,
    stream: Stream = None,
) -> None:
    """Work the maintenance queue (re-pricing, alerts, retention) with an RQ worker.

    Jobs run against this process's own database (AILEDGER_DATABASE_URL): no job carries one.
    """
    from rq import Queue
    from rq import Worker as RQWorker

    from producer.connection import connect
    from producer.constants import maintenance_queue

    configure_logging()
    settings = _settings(redis_url=redis_url, stream=stream)
    if check:
        _health_check(settings, "jobs")
    # RQ blocks on its queue for minutes: a client that times out sooner would break it.
    connection = connect(settings.redis_url, socket_timeout=600)
    queue = Queue(maintenance_queue(settings.stream), connection=connection)
    from ailedger.ops.schedule import scheduled

    with scheduled(settings, enabled=schedule, burst=burst):
        RQWorker([queue], connection=connection).work(burst=burst)


@app.command()
def status(
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Redraw every second")] = False,
    max_lag: Annotated[
        int | None,
        typer.Option("--max-lag", min=0, help="Exit 1 when more entries were never delivered"),
    ] = None,
    max_pending_age: Annotated[
        float | None,
        typer.Option(
            "--max-pending-age", min=0, help="Exit 1 when an unacknowledged entry is older (s)"
        ),
    ] = None,
    redis_url: RedisUrl = None,
    stream: Stream = None,
    group: Group = None,
) -> None:
    """Queue depth, consumers and a verdict; thresholds set the exit code (cron, probes).

    Exit codes: 0 fine, 1 failing (a threshold is exceeded, entries wait with no live
    worker, or no worker can store), 2 Redis cannot be reached.
    """
    import time

    import redis
    from rich.live import Live

    from ailedger.ops.status import (
        Thresholds,
        queue_status,
        render_status,
        status_error_json,
        status_json,
    )
    from producer.connection import connect

    settings = _settings(redis_url=redis_url, stream=stream, group=group)
    limits = Thresholds(max_lag=max_lag, max_pending_age_s=max_pending_age)
    client = connect(settings.redis_url, socket_timeout=5.0, connect_timeout=5.0)

    def check() -> Any:
        try:
            return queue_status(client, settings, thresholds=limits)
        except redis.RedisError as exc:
            message = f"cannot read the queue at {hide_password(settings.redis_url)}: {exc}"
            if json_output:
                typer.echo(status_error_json(settings, message))
            else:
                console.print(message, style="red", markup=False)
            raise typer.Exit(2) from None

    if not watch:
        found = check()
        if json_output:
            typer.echo(status_json(found))
        else:
            console.print(render_status(found))
        raise typer.Exit(0 if found.ok else 1)
    found = check()
    if json_output:
        while True:  # one JSON line per second, until interrupted
            typer.echo(status_json(found))
            time.sleep(1.0)
            found = check()
    with Live(render_status(found), console=console, auto_refresh=False) as live:
        while True:
            time.sleep(1.0)
            found = check()
            live.update(render_status(found), refresh=True)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option("--host", help=_env("Address to listen on", "api_host"))
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help=_env("Port to listen on", "api_port"))
    ] = None,
    database_url: DatabaseUrl = None,
    api_database_url: Annotated[
        str | None,
        typer.Option(
            "--api-database-url",
            help=_env(
                "Read-only connection", "api_database_url", "the database, as ailedger_reader"
            ),
        ),
    ] = None,
    redis_url: RedisUrl = None,
    stream: Stream = None,
    group: Group = None,
) -> None:
    """Serve the metrics API (OpenAPI docs at /docs); admin endpoints need AILEDGER_API_TOKEN."""
    import uvicorn

    from ailedger.api.app import create_app, is_loopback

    settings = _settings(
        api_host=host,
        api_port=port,
        database_url=database_url,
        api_database_url=api_database_url,
        redis_url=redis_url,
        stream=stream,
        group=group,
    )
    if settings.api_token is None and not is_loopback(settings.api_host):
        console.print(
            f"[red]refusing to listen on {settings.api_host} without a token:[/red] "
            "set AILEDGER_API_TOKEN, or listen on 127.0.0.1"
        )
        raise typer.Exit(2)
    configure_logging()
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        # An open dashboard tab holds a live job stream: stop it rather than wait for it.
        timeout_graceful_shutdown=3,
    )


app.add_typer(budget_app, name="budget")
app.add_typer(alerts_app, name="alerts")
app.add_typer(retention_app, name="retention")
app.add_typer(partitions_app, name="partitions")
app.add_typer(dlq_app, name="dlq")
app.add_typer(spool_app, name="spool")

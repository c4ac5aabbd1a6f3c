"""The commands of ``ailedger``: each a thin shell over library calls."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from ailedger.settings import Settings
from worker.logs import configure_logging

app = typer.Typer(
    name="ailedger",
    help="Record every AI call: tokens, cost, latency, confidence, fallbacks, per job.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console()

RedisUrl = Annotated[
    str | None, typer.Option("--redis-url", help="Redis URL [env: AILEDGER_REDIS_URL]")
]
DatabaseUrl = Annotated[
    str | None, typer.Option("--database-url", help="Postgres URL [env: AILEDGER_DATABASE_URL]")
]
Stream = Annotated[str | None, typer.Option("--stream", help="Stream key [env: AILEDGER_STREAM]")]
Group = Annotated[str | None, typer.Option("--group", help="Consumer group [env: AILEDGER_GROUP]")]


def _settings(**flags: Any) -> Settings:
    """Environment first, flags over it."""
    return Settings(**{k: v for k, v in flags.items() if v is not None})


@app.command()
def migrate(database_url: DatabaseUrl = None) -> None:
    """Create the database if missing and apply the migrations not yet applied."""
    from ailedger.ops.migrate import migrate as apply

    configure_logging()
    settings = _settings(database_url=database_url)
    applied = apply(settings.database_url)
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
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1)] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port", help="Serve Prometheus /metrics [env: AILEDGER_METRICS_PORT]"
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
    collectors = [QueueCollector(settings)] if settings.metrics_port else []
    raise typer.Exit(
        run_workers(settings, processes=processes, burst=burst, metrics_collectors=collectors)
    )


@app.command()
def demo(
    events: Annotated[
        int, typer.Option("--events", "-n", min=1, help="Events to generate")
    ] = 20_000,
    processes: Annotated[int, typer.Option("--processes", "-p", min=1)] = 2,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where embedded servers keep their data")
    ] = None,
) -> None:
    """Generate a day of realistic platform traffic and show what it cost."""
    from ailedger.extras import require

    require("demo")
    from ailedger.demo.run import run_demo

    configure_logging(level="WARNING")
    settings = _settings(data_dir=data_dir)
    summary = run_demo(settings, events=events, processes=processes, console=console)
    if not summary.complete:
        raise typer.Exit(1)


# -- dead letters ----------------------------------------------------------------

dlq_app = typer.Typer(help="Inspect, replay and purge entries that could not be stored.")
app.add_typer(dlq_app, name="dlq")


@dlq_app.command("list")
def dlq_list(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 50,
    include_replayed: Annotated[bool, typer.Option("--all", help="Include replayed ones")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Show dead letters, newest first, with the reason each was refused."""
    import orjson
    import psycopg
    from rich.table import Table

    from ailedger.ops.deadletters import list_dead_letters

    settings = _settings(database_url=database_url)
    with psycopg.connect(settings.database_url) as conn:
        letters = list_dead_letters(conn, limit=limit, include_replayed=include_replayed)
    if as_json:
        for letter in letters:
            line = {
                "stream_id": letter.stream_id,
                "event_id": letter.event_id,
                "reason": letter.reason,
                "delivery_count": letter.delivery_count,
                "first_seen": letter.first_seen,
                "last_seen": letter.last_seen,
                "replayed_at": letter.replayed_at,
                "raw": letter.raw.decode("utf-8", "replace"),
            }
            sys.stdout.write(orjson.dumps(line).decode() + "\n")
        return
    table = Table(title=f"dead letters ({len(letters)} shown)")
    for column in ("stream id", "event id", "deliveries", "last seen", "reason"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        table.add_row(
            letter.stream_id,
            letter.event_id or "-",
            str(letter.delivery_count),
            letter.last_seen.strftime("%Y-%m-%d %H:%M:%S"),
            letter.reason,
        )
    console.print(table)


@dlq_app.command("replay")
def dlq_replay(
    ids: Annotated[
        list[str] | None, typer.Option("--id", help="Stream id of a dead letter (repeatable)")
    ] = None,
    replay_all: Annotated[
        bool, typer.Option("--all", help="Every dead letter not yet replayed")
    ] = False,
    redis_url: RedisUrl = None,
    database_url: DatabaseUrl = None,
    stream: Stream = None,
) -> None:
    """Put dead letters back on the stream once their cause is fixed."""
    import psycopg

    from ailedger.ops.deadletters import replay
    from producer.connection import connect

    if not ids and not replay_all:
        console.print("[red]say which: --id STREAM_ID (repeatable) or --all[/red]")
        raise typer.Exit(2)
    settings = _settings(redis_url=redis_url, database_url=database_url, stream=stream)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        try:
            count = replay(conn, connect(settings.redis_url), settings.stream, stream_ids=ids)
        except LookupError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
    console.print(f"replayed {count} dead letter(s) onto {settings.stream}")


@dlq_app.command("purge")
def dlq_purge(
    older_than: Annotated[str, typer.Option("--older-than", help="Age, e.g. 30d, 12h")],
    redis_url: RedisUrl = None,
    database_url: DatabaseUrl = None,
    stream: Stream = None,
) -> None:
    """Delete dead letters last seen before the given age."""
    import psycopg

    from ailedger.ops.deadletters import parse_age, purge
    from producer.connection import connect

    try:
        age = parse_age(older_than)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    settings = _settings(redis_url=redis_url, database_url=database_url, stream=stream)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        count = purge(conn, connect(settings.redis_url), settings.stream, older_than=age)
    console.print(f"purged {count} dead letter(s) older than {older_than}")


# -- maintenance jobs (RQ) ---------------------------------------------------------


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
) -> None:
    """Recompute stored costs after prices change (queued for `ailedger jobs`)."""
    from ailedger.ops.reprice import enqueue_reprice
    from ailedger.ops.reprice import reprice as run_reprice

    configure_logging()
    settings = _settings(redis_url=redis_url, database_url=database_url)
    filters: dict[str, Any] = {
        "since": _utc(since),
        "until": _utc(until),
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
    job_id = enqueue_reprice(settings.redis_url, settings.database_url, **filters)
    console.print(f"queued reprice job {job_id}; `ailedger jobs` runs it")


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@app.command()
def jobs(
    burst: Annotated[bool, typer.Option("--burst", help="Exit once the queue is empty")] = False,
    redis_url: RedisUrl = None,
) -> None:
    """Work the maintenance queue (re-pricing) with an RQ worker."""
    from rq import Queue
    from rq import Worker as RQWorker

    from producer.connection import connect
    from producer.constants import MAINTENANCE_QUEUE

    configure_logging()
    settings = _settings(redis_url=redis_url)
    # RQ blocks on its queue for minutes: a client that times out sooner would break it.
    connection = connect(settings.redis_url, socket_timeout=600)
    queue = Queue(MAINTENANCE_QUEUE, connection=connection)
    RQWorker([queue], connection=connection).work(burst=burst)


# -- ailedger spool: the producer's disk spool ---------------------------------------------

spool_app = typer.Typer(
    help="The producer's disk spool: events kept on disk while Redis was away.",
    no_args_is_help=True,
)
app.add_typer(spool_app, name="spool")


@spool_app.command("replay")
def spool_replay(
    folder: Annotated[
        Path | None,
        typer.Argument(help="Spool folder (default: AILEDGER_SPOOL_DIR, else the temp dir's)"),
    ] = None,
    redis_url: RedisUrl = None,
    stream: Annotated[
        str | None,
        typer.Option("--stream", help="Only this stream's events (default: each to its own)"),
    ] = None,
) -> None:
    """Send the events producers that are gone left in a spool folder, oldest first."""
    import redis

    from producer.spool import default_spool_dir, replay_spool

    configure_logging()
    folder = folder or default_spool_dir()
    url = redis_url or _settings().redis_url
    try:
        sent = replay_spool(folder, url, stream)
    except (redis.RedisError, OSError) as exc:
        message = f"replay stopped: {exc}; what was not sent stays in {folder}"
        console.print(message, style="red", markup=False)
        raise typer.Exit(1) from None
    console.print(f"sent {sent} spooled event(s) from {folder}", markup=False)


# -- observability: `status` and `serve` ---------------------------------------------


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

    Exit codes: 0 fine, 1 a threshold is exceeded, 2 Redis cannot be reached.
    """
    import time

    import redis
    from rich.live import Live

    from ailedger.ops.status import Thresholds, queue_status, render_status, status_json
    from producer.connection import connect

    settings = _settings(redis_url=redis_url, stream=stream, group=group)
    limits = Thresholds(max_lag=max_lag, max_pending_age_s=max_pending_age)
    client = connect(settings.redis_url, socket_timeout=5.0, connect_timeout=5.0)

    def check() -> Any:
        try:
            return queue_status(client, settings, thresholds=limits)
        except redis.RedisError as exc:
            console.print(f"[red]cannot read the queue at {settings.redis_url}: {exc}[/red]")
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
        str | None, typer.Option("--host", help="Address to listen on [env: AILEDGER_API_HOST]")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Port [env: AILEDGER_API_PORT]")
    ] = None,
    database_url: DatabaseUrl = None,
    api_database_url: Annotated[
        str | None,
        typer.Option(
            "--api-database-url",
            help="Read-only connection [env: AILEDGER_API_DATABASE_URL; "
            "default: the database as ailedger_reader]",
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

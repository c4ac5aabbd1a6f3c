"""``ailedger dlq`` and ``ailedger spool``: what could not be stored or sent, replayed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ailedger.cli.options import DatabaseUrl, RedisUrl, Stream, console
from ailedger.cli.options import settings_from as _settings
from worker.errors import InvalidInput
from worker.logs import configure_logging

# -- dead letters ----------------------------------------------------------------

dlq_app = typer.Typer(
    help="Inspect, replay and purge entries that could not be stored.", no_args_is_help=True
)


@dlq_app.command("list")
def dlq_list(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Show at most this many")] = 50,
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


# -- ailedger spool: the producer's disk spool ---------------------------------------------

spool_app = typer.Typer(
    help="The producer's disk spool: events kept on disk while Redis was away.",
    no_args_is_help=True,
)


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

    from producer.replay import replay_spool
    from producer.spool import default_spool_dir

    configure_logging()
    if folder is not None and not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise InvalidInput(
            f"{folder} {what}; give the folder a producer spooled into "
            "(its AILEDGER_SPOOL_DIR), or no argument for the default one"
        )
    folder = folder or default_spool_dir()
    url = _settings(redis_url=redis_url).redis_url
    try:
        sent = replay_spool(folder, url, stream)
    except (redis.RedisError, OSError) as exc:
        message = f"replay stopped: {exc}; what was not sent stays in {folder}"
        console.print(message, style="red", markup=False)
        raise typer.Exit(1) from None
    console.print(f"sent {sent} spooled event(s) from {folder}", markup=False)


# -- observability: `status` and `serve` ---------------------------------------------

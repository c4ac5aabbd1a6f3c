"""The ``ailedger`` command: a thin shell over library calls. Signal handling lives here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from worker.logs import configure_logging
from worker.settings import Settings

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
    from worker.migrate import migrate as apply

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
    redis_url: RedisUrl = None,
    database_url: DatabaseUrl = None,
    stream: Stream = None,
    group: Group = None,
) -> None:
    """Consume the stream: validate, price, score and store events in batches."""
    from worker.supervisor import run_workers

    configure_logging()
    settings = _settings(
        redis_url=redis_url,
        database_url=database_url,
        stream=stream,
        group=group,
        batch_size=batch_size,
    )
    raise typer.Exit(run_workers(settings, processes=processes, burst=burst))


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
    from worker.demo import run_demo

    configure_logging(level="WARNING")
    settings = _settings(data_dir=data_dir)
    run_demo(settings, events=events, processes=processes, console=console)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()

"""``ailedger demo``: the whole pipeline on realistic traffic, with nothing to set up.

With no ``AILEDGER_REDIS_URL`` / ``AILEDGER_DATABASE_URL`` in the environment the
demo starts embedded Postgres and Valkey under ``settings.data_dir``; with them it
uses those servers. It migrates, starts workers, logs the calls of a few hundred
PDF jobs through :class:`producer.AICallLogger` from several threads, follows the
rows as workers store them, and prints what the traffic cost.

Each run writes to a stream of its own and counts only its own rows (its jobs,
created after it started), so runs never confuse each other, even on shared servers.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import psycopg
import redis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ailedger.demo.embedded import EmbeddedServers, servers_answer
from ailedger.demo.report import DemoSummary, ModelCost, TaskSummary, print_summary
from ailedger.demo.serving import CLIP_PER_IMAGE_USD, serve_dashboard
from ailedger.demo.traffic import CLIP, Event, generate_jobs
from ailedger.ops.migrate import migrate
from ailedger.settings import Settings, hide_password
from producer import AICallLogger
from producer.constants import dead_letter_stream, heartbeat_pattern
from worker.errors import ConfigurationError
from worker.supervisor import run_workers

#: Threads logging at once, like the request handlers of a service.
LOGGING_THREADS = 4
#: Give up when the stored count has not moved for this long.
STALL_TIMEOUT_S = 30.0
#: How long worker processes may take to start (interpreter, imports, connections).
WORKER_START_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.25

#: This run's rows: its jobs, stored since it started (a rerun with the same seed
#: makes the same job ids).
_THIS_RUN = "job_id = ANY(%s::uuid[]) AND created_at >= %s"
Scope = tuple[list[str], datetime]


def embedded_wanted(environ: Mapping[str, str] | None = None) -> bool:
    """True when no server is configured: neither AILEDGER_REDIS_URL nor AILEDGER_DATABASE_URL."""
    env = os.environ if environ is None else environ
    return "AILEDGER_REDIS_URL" not in env and "AILEDGER_DATABASE_URL" not in env


def run_demo(
    settings: Settings,
    *,
    events: int = 20_000,
    processes: int = 2,
    use_embedded: bool | None = None,
    seed: int | None = None,
    console: Console | None = None,
    serve: bool = False,
) -> DemoSummary:
    """Run the demo end to end, print its summary and return it.

    ``use_embedded`` defaults to :func:`embedded_wanted`. ``seed`` reproduces the
    traffic (not the event ids, which the producer makes); by default each run
    draws its own. ``serve``: then serve the dashboard on the same servers until
    Ctrl-C (embedded ones stay up meanwhile).
    """
    console = console or Console()
    use_embedded = embedded_wanted() if use_embedded is None else use_embedded
    seed = random.SystemRandom().getrandbits(32) if seed is None else seed
    servers = EmbeddedServers(settings.data_dir) if use_embedded else None
    with contextlib.ExitStack() as stack:
        if servers is not None:
            with console.status(f"starting embedded Postgres and Valkey in {servers.data_dir}"):
                stack.enter_context(servers)
            settings = settings.model_copy(
                update={"redis_url": servers.redis_url, "database_url": servers.database_url}
            )
            console.print(
                f"embedded Postgres ({servers.postgres_start_s:.2f}s) and Valkey "
                f"({servers.valkey_start_s:.2f}s) running in [bold]{servers.data_dir}[/]"
            )
        else:
            _check_servers(settings)
            console.print(
                f"using Redis {hide_password(settings.redis_url)} and "
                f"Postgres {hide_password(settings.database_url)}"
            )
        stream = f"{settings.stream}:demo-{uuid.uuid4().hex[:8]}"
        settings = settings.model_copy(update={"stream": stream})
        with console.status("migrating"):
            migrate(settings.database_url)
            _price_clip(settings.database_url)
        traffic = list(generate_jobs(random.Random(seed), events))
        job_ids = sorted({e["job_id"] for e in traffic})
        console.print(
            f"{events:,} calls from {len(job_ids):,} PDF jobs (seed {seed}) "
            f"→ stream [bold]{stream}[/] → {processes} worker process(es)"
        )
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            scope: Scope = (job_ids, conn.execute("SELECT now()").fetchone()[0])  # type: ignore[index]
            stack.enter_context(_quiet_worker_logs())
            workers = _Workers(settings, processes)
            stack.callback(workers.stop)
            workers.start()
            stored, dropped, seconds = _log_and_follow(
                settings, traffic, conn, scope, workers, console
            )
            workers.stop()
            summary = DemoSummary(
                events=events,
                stored=stored,
                dropped=dropped,
                rejected=_count(
                    conn, "SELECT count(*) FROM ai_call_rejects WHERE stream = %s", stream
                ),
                jobs=len(job_ids),
                seconds=seconds,
                by_model=_cost_by_model(conn, scope),
                by_task=_by_task(conn, scope),
                stream=stream,
                seed=seed,
                embedded=servers is not None,
                servers_start_s=None
                if servers is None
                else (servers.postgres_start_s or 0) + (servers.valkey_start_s or 0),
            )
        if summary.complete:
            _forget_stream(settings)
        print_summary(summary, console)
        if serve and summary.complete:
            serve_dashboard(settings, console)
    return summary


def _price_clip(database_url: str) -> None:
    """The demo's self-hosted CLIP gets a per-image price, unless one is set already."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO price_overrides (provider, model, per_image, note)"
            " VALUES ('local', %s, %s, 'ailedger demo: self-hosted CLIP, per image')"
            " ON CONFLICT DO NOTHING",
            (CLIP, CLIP_PER_IMAGE_USD),
        )


class _Workers:
    """``run_workers`` in a background thread, stopped through its stop event."""

    def __init__(self, settings: Settings, processes: int) -> None:
        self.settings = settings
        self.processes = processes
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ailedger-demo-workers")

    def _run(self) -> None:
        try:
            run_workers(
                self.settings,
                processes=self.processes,
                burst=False,
                handle_signals=False,  # signals belong to the main thread
                stop_event=self._stop,
            )
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def start(self) -> None:
        """Start, and wait until every worker has joined the group (its first heartbeat)."""
        self._thread.start()
        client = redis.Redis.from_url(self.settings.redis_url)
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        try:
            while time.monotonic() < deadline and self.alive:
                beats = list(client.scan_iter(match=heartbeat_pattern(self.settings.stream)))
                if len(beats) >= self.processes:
                    return
                time.sleep(0.05)
        finally:
            client.close()
        if self.error is not None:
            raise self.error
        # Not all up in time: go on, the stream keeps the events until they are.

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(60)


def _log_and_follow(
    settings: Settings,
    traffic: list[Event],
    conn: psycopg.Connection[Any],
    scope: Scope,
    workers: _Workers,
    console: Console,
) -> tuple[int, int, float]:
    """Log the traffic from several threads, follow the rows: ``(stored, dropped, seconds)``."""
    total = len(traffic)
    # A service logs as its calls finish; the demo logs the whole run at once, so the
    # buffer must hold all of it or the producer would (rightly) drop the excess.
    logger = AICallLogger(
        settings.redis_url, stream=settings.stream, max_buffer=max(100_000, total)
    )
    progress = Progress(
        TextColumn("{task.description:>8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
    )
    stored = 0
    started = finished = last_change = time.perf_counter()
    halt = threading.Event()
    logged_all = False
    try:
        with progress:
            sent_bar = progress.add_task("sent", total=total, rate="")
            stored_bar = progress.add_task("stored", total=total, rate="")
            threads = [
                threading.Thread(
                    target=_log_all,
                    args=(logger, traffic[i::LOGGING_THREADS], halt),
                    name=f"service-{i}",
                )
                for i in range(LOGGING_THREADS)
            ]
            for thread in threads:
                thread.start()
            while (
                stored < total - logger.stats.dropped
                and workers.alive
                and time.perf_counter() - last_change < STALL_TIMEOUT_S
            ):
                time.sleep(POLL_INTERVAL_S)
                count = _count(conn, f"SELECT count(*) FROM ai_call_logs WHERE {_THIS_RUN}", *scope)
                now = time.perf_counter()
                if count != stored:
                    stored, last_change, finished = count, now, now
                progress.update(sent_bar, completed=logger.stats.sent)
                progress.update(
                    stored_bar, completed=stored, rate=f"{stored / (now - started):,.0f} rows/s"
                )
            for thread in threads:
                thread.join()
            logged_all = True
            progress.update(sent_bar, completed=logger.stats.sent)
    finally:
        # Interrupted (Ctrl-C): stop logging and do not wait to send the rest.
        halt.set()
        logger.close(timeout=10.0 if logged_all else 1.0)
    dropped = logger.stats.dropped
    if dropped:
        console.print(f"[red]the producer dropped {dropped:,} events: its buffer was full[/]")
    if workers.error is not None:
        console.print(f"[red]workers failed: {workers.error}[/]")
    elif stored < total - dropped:
        console.print(
            f"[red]only {stored:,} of {total:,} rows stored; nothing new for "
            f"{STALL_TIMEOUT_S:.0f}s[/]. See `ailedger status --stream {settings.stream}`."
        )
    return stored, dropped, finished - started


def _log_all(logger: AICallLogger, events: list[Event], halt: threading.Event) -> None:
    for fields in events:
        if halt.is_set():
            return
        logger.log(**fields)


@contextlib.contextmanager
def _quiet_worker_logs() -> Iterator[None]:
    """Worker processes log at INFO by default; their lines would tear the progress bar."""
    if "AILEDGER_LOG_LEVEL" in os.environ:
        yield
        return
    os.environ["AILEDGER_LOG_LEVEL"] = "WARNING"
    try:
        yield
    finally:
        os.environ.pop("AILEDGER_LOG_LEVEL", None)


def _check_servers(settings: Settings) -> None:
    redis_ok, postgres_ok = servers_answer(settings.redis_url, settings.database_url, timeout=3)
    down = [
        f"{name} at {hide_password(url)}"
        for name, url, ok in (
            ("Redis", settings.redis_url, redis_ok),
            ("Postgres", settings.database_url, postgres_ok),
        )
        if not ok
    ]
    if down:
        raise ConfigurationError(
            f"{' and '.join(down)} did not answer. Start it, fix AILEDGER_REDIS_URL / "
            "AILEDGER_DATABASE_URL, or unset both to run on embedded servers."
        )


def _forget_stream(settings: Settings) -> None:
    """Every entry is stored and acknowledged: the run's stream has nothing left to keep."""
    client = redis.Redis.from_url(settings.redis_url)
    try:
        if not client.exists(dead_letter_stream(settings.stream)):
            client.delete(settings.stream)
    except redis.RedisError:
        pass  # only tidiness is lost
    finally:
        client.close()


def _count(conn: psycopg.Connection[Any], query: str, *params: Any) -> int:
    row = conn.execute(query, params).fetchone()
    return int(row[0]) if row else 0


def _cost_by_model(conn: psycopg.Connection[Any], scope: Scope) -> tuple[ModelCost, ...]:
    rows = conn.execute(
        f"""SELECT model, provider, count(*), coalesce(sum(input_tokens), 0),
                   coalesce(sum(output_tokens), 0), coalesce(sum(cost), 0),
                   count(*) FILTER (WHERE cost IS NULL)
            FROM ai_call_logs WHERE {_THIS_RUN}
            GROUP BY model, provider ORDER BY 6 DESC, 3 DESC""",
        scope,
    ).fetchall()
    return tuple(ModelCost(*row) for row in rows)


def _by_task(conn: psycopg.Connection[Any], scope: Scope) -> tuple[TaskSummary, ...]:
    rows = conn.execute(
        f"""SELECT task, count(*), coalesce(sum(cost), 0), count(*) FILTER (WHERE cost IS NULL),
                   count(*) FILTER (WHERE action = 'fallback_to_rules'),
                   count(*) FILTER (WHERE error_message IS NOT NULL),
                   round(avg(confidence_score), 2),
                   percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms)
            FROM ai_call_logs WHERE {_THIS_RUN}
            GROUP BY task ORDER BY 3 DESC, 2 DESC""",
        scope,
    ).fetchall()
    return tuple(TaskSummary(*row) for row in rows)

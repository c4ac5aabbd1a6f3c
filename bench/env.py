"""What a bench run stands on: its own databases and stream keys, and the machine's facts.

Every run has an id; its databases are named ``ailedger_bench_<id>_…`` and its Redis
keys start with ``ailedger-bench:<id>:``, so a run never touches anything else on
the shared servers and removes all of it when it ends, even when it fails.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ailedger.ops.migrate import load_migrations, migrate

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_POSTGRES_URL = "postgresql://127.0.0.1:5432/postgres"
DB_PREFIX = "ailedger_bench_"
KEY_PREFIX = "ailedger-bench:"


def database_name(url: str) -> str:
    return str(conninfo_to_dict(url)["dbname"])


def server_args(parser: argparse.ArgumentParser) -> None:
    """``--redis-url`` and ``--postgres-url``, defaulting to the environment's servers."""
    parser.add_argument(
        "--redis-url", default=os.environ.get("AILEDGER_REDIS_URL", DEFAULT_REDIS_URL)
    )
    parser.add_argument("--postgres-url", default=default_postgres_url())


def default_postgres_url() -> str:
    """The server named by AILEDGER_DATABASE_URL (its maintenance database), or the local one."""
    url = os.environ.get("AILEDGER_DATABASE_URL")
    return make_conninfo(url, dbname="postgres") if url else DEFAULT_POSTGRES_URL


@dataclass
class BenchEnv:
    """The servers a run uses and the throwaway things it made on them."""

    redis_url: str
    postgres_url: str  # any database on the server: the run creates its own next to it
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    _template: str | None = None
    _databases: list[str] = field(default_factory=list)
    _serial: int = 0
    _spool: Path | None = None

    def key(self, name: str) -> str:
        """A Redis key that belongs to this run."""
        return f"{KEY_PREFIX}{self.run_id}:{name}"

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def spool_dir(self) -> Path:
        """This run's own producer spool folder.

        The default folder is shared by every producer of the user on the machine, and
        a new logger adopts the segments a finished process left there: events the bench
        spools while it plays "Redis down" must not end up in anyone else's logger.
        """
        if self._spool is None:
            self._spool = Path(tempfile.mkdtemp(prefix=f"ailedger-bench-{self.run_id}-spool-"))
        return self._spool

    def redis_pid(self) -> dict[str, int]:
        """``{"redis": pid}`` when the Redis server runs on this machine, else ``{}``."""
        client = self.redis()
        try:
            pid = int(client.info("server").get("process_id", 0))
        finally:
            client.close()
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return {}
        return {"redis": pid} if b"redis" in title or b"valkey" in title else {}

    def _admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.postgres_url, autocommit=True, connect_timeout=10)

    def fresh_database(self) -> str:
        """A new database holding exactly the migrated schema; returns its URL.

        The first is created and migrated with ``ailedger.ops.migrate.migrate`` (what
        ``ailedger migrate`` runs); later ones are cloned from it, which is the same
        schema at a fraction of the cost.
        """
        if self._template is None:
            name = f"{DB_PREFIX}{self.run_id}_tpl"
            self._databases.append(name)
            migrate(make_conninfo(self.postgres_url, dbname=name))
            self._template = name
        self._serial += 1
        name = f"{DB_PREFIX}{self.run_id}_{self._serial}"
        with self._admin() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(self._template)
                )
            )
        self._databases.append(name)
        return make_conninfo(self.postgres_url, dbname=name)

    def drop_database(self, url: str) -> None:
        name = database_name(url)
        with self._admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        if name in self._databases:
            self._databases.remove(name)

    def delete_keys(self) -> None:
        client = self.redis()
        try:
            keys = list(client.scan_iter(match=f"{KEY_PREFIX}{self.run_id}:*", count=1000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start : start + 1000])
        finally:
            client.close()

    def cleanup(self) -> None:
        """Drop every database, delete every key and the spool folder this run made."""
        if self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)
            self._spool = None
        self.delete_keys()
        # Newest first, so the template (made first) goes last.
        for name in reversed(list(self._databases)):
            with self._admin() as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        self._databases.clear()
        self._template = None


@contextmanager
def bench_env(redis_url: str, postgres_url: str, run_id: str | None = None) -> Iterator[BenchEnv]:
    env = BenchEnv(redis_url, postgres_url)
    if run_id:
        env.run_id = run_id
    try:
        yield env
    finally:
        env.cleanup()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def machine_facts(env: BenchEnv) -> dict[str, Any]:
    """What the figures were measured on: hardware, versions, load when the run began."""
    import psycopg as pg
    import redis as redis_py
    import rq

    with env._admin() as conn:
        row = conn.execute("SHOW server_version").fetchone()
        postgres = row[0] if row else "unknown"
    client = env.redis()
    try:
        info = client.info("server")
    finally:
        client.close()
    try:
        kernel = subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip()
    except OSError:
        kernel = platform.release()
    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "ram_gib": _ram_gib(),
        "kernel": kernel,
        "python": platform.python_version(),
        "postgres": postgres,
        "redis": info.get("redis_version", "unknown"),
        "psycopg": pg.__version__,
        "redis_py": redis_py.__version__,
        "rq": rq.__version__,
        "load_avg": _load(),
        "migrations": [m.name for m in load_migrations()],
    }

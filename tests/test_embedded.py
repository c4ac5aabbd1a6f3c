"""Embedded Postgres and Valkey, and the demo: ailedger on a machine where nothing runs yet."""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from decimal import Decimal
from pathlib import Path

import psutil
import psycopg
import pytest
import redis
from psycopg.conninfo import make_conninfo
from rich.console import Console

from ailedger.demo.embedded import EmbeddedServers, servers_answer
from ailedger.demo.run import embedded_wanted, run_demo
from ailedger.demo.serving import CLIP_PER_IMAGE_USD
from ailedger.demo.traffic import CLIP, generate_jobs
from ailedger.settings import Settings
from tests.faults import free_port
from worker.errors import ConfigurationError


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One folder for the module: initdb runs once, later tests restart from its data.
    return tmp_path_factory.mktemp("embedded")


def server_processes(data_dir: Path) -> list[psutil.Process]:
    """Live Postgres and Valkey processes working in ``data_dir`` (zombies excluded)."""
    found = []
    for process in psutil.process_iter(["cwd", "status"]):
        cwd = process.info["cwd"] or ""
        if cwd.startswith(str(data_dir)) and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_other_processes_connect_with_the_urls_and_stop_ends_both(data_dir: Path) -> None:
    with EmbeddedServers(data_dir) as servers:
        assert servers.redis_url.startswith("redis://127.0.0.1:")
        assert redis.Redis.from_url(servers.redis_url).ping()
        with psycopg.connect(servers.database_url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("ailedger",)
        # A worker process started later gets nothing but the two URLs.
        code = textwrap.dedent(
            f"""
            import psycopg, redis
            redis.Redis.from_url({servers.redis_url!r}).xadd("s", {{"e": "1"}})
            with psycopg.connect({servers.database_url!r}) as conn:
                print(conn.execute("SELECT 40 + 2").fetchone()[0])
            """
        )
        child = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
        assert child.stdout.strip() == "42", child.stderr
        assert servers_answer(servers.redis_url, servers.database_url) == (True, True)
        assert servers.postgres_start_s is not None and servers.valkey_start_s is not None
        urls = servers.redis_url, servers.database_url
    assert servers_answer(*urls) == (False, False)
    assert wait_until(lambda: not server_processes(data_dir))


def test_data_survives_a_restart(data_dir: Path) -> None:
    with EmbeddedServers(data_dir) as servers:
        with psycopg.connect(servers.database_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS kept (note text)")
            conn.execute("INSERT INTO kept VALUES ('written before the restart')")
        redis.Redis.from_url(servers.redis_url).set("kept", "before the restart")
    with EmbeddedServers(data_dir) as servers:
        with psycopg.connect(servers.database_url) as conn:
            assert conn.execute("SELECT note FROM kept").fetchall() == [
                ("written before the restart",)
            ]
        assert redis.Redis.from_url(servers.redis_url).get("kept") == b"before the restart"


def test_a_killed_run_does_not_block_the_next_one(data_dir: Path) -> None:
    code = textwrap.dedent(
        f"""
        import os, signal, sys
        from pathlib import Path
        from ailedger.demo.embedded import EmbeddedServers
        servers = EmbeddedServers(Path({str(data_dir)!r})).start()
        print(servers.redis_url, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr
    orphan_redis = child.stdout.splitlines()[-1]  # after any log lines
    assert redis.Redis.from_url(orphan_redis).ping()  # left running by the killed run

    with EmbeddedServers(data_dir) as servers:
        assert redis.Redis.from_url(servers.redis_url).ping()
        with psycopg.connect(servers.database_url) as conn:
            assert conn.execute("SELECT count(*) FROM kept").fetchone() == (1,)
        # Two Valkeys must never share one data folder.
        assert servers_answer(orphan_redis, servers.database_url) == (False, True)
    assert wait_until(lambda: not server_processes(data_dir))


def test_servers_answer_tells_a_server_from_a_closed_port(servers) -> None:
    assert servers_answer(servers.redis_url, servers.admin_url) == (True, True)
    # A missing database still means a server that answers: migrate creates it.
    missing = make_conninfo(servers.admin_url, dbname="ailedger_no_such_database")
    assert servers_answer(servers.redis_url, missing) == (True, True)
    port = free_port()
    closed = (f"redis://127.0.0.1:{port}/0", f"postgresql://127.0.0.1:{port}/ailedger")
    started = time.monotonic()
    assert servers_answer(*closed, timeout=1.0) == (False, False)
    assert time.monotonic() - started < 5


def test_demo_needs_no_configuration(data_dir: Path) -> None:
    assert embedded_wanted({})
    assert not embedded_wanted({"AILEDGER_DATABASE_URL": "postgresql://db/ailedger"})
    out = io.StringIO()
    log_level = os.environ.get("AILEDGER_LOG_LEVEL")
    summary = run_demo(
        Settings(data_dir=data_dir),
        events=1_000,
        processes=2,
        use_embedded=True,
        seed=11,
        console=Console(file=out, width=120),
    )
    assert summary.complete, out.getvalue()
    assert summary.stored == 1_000 and summary.embedded
    assert summary.total_cost > 0
    # The demo prices its self-hosted CLIP per image: each call that did not fail.
    clip = next(m for m in summary.by_model if m.model == CLIP)
    embedded_ok = [
        e
        for e in generate_jobs(random.Random(11), 1_000)
        if e["model"] == CLIP and "error_message" not in e
    ]
    assert clip.unpriced == 0
    assert clip.cost == Decimal(CLIP_PER_IMAGE_USD) * len(embedded_ok)
    assert sum(t.calls for t in summary.by_task) == 1_000
    printed = out.getvalue()
    assert "Cost by model" in printed and "events/s" in printed
    assert "claude-3-5-sonnet-20241022" in printed
    assert wait_until(lambda: not server_processes(data_dir))
    assert os.environ.get("AILEDGER_LOG_LEVEL") == log_level  # the demo's quieting is undone


def test_demo_uses_the_configured_servers(settings: Settings, db) -> None:
    out = io.StringIO()
    summary = run_demo(
        settings, events=500, processes=1, use_embedded=False, console=Console(file=out)
    )
    assert summary.complete and not summary.embedded, out.getvalue()
    assert summary.stream.startswith(settings.stream + ":demo-")
    assert db.execute("SELECT count(*) FROM ai_call_logs").fetchone() == (500,)
    # A second run counts only its own rows, although the same seed makes the same jobs.
    again = run_demo(
        settings,
        events=500,
        processes=1,
        use_embedded=False,
        seed=summary.seed,
        console=Console(file=io.StringIO()),
    )
    assert again.stored == 500 and again.total_cost == summary.total_cost


def test_demo_says_which_configured_server_does_not_answer(settings: Settings) -> None:
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    with pytest.raises(
        ConfigurationError, match=r"Redis at redis://127\.0\.0\.1:\d+/0 did not answer"
    ):
        run_demo(down, events=10, use_embedded=False, console=Console(file=io.StringIO()))

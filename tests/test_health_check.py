"""`ailedger worker --check` / `jobs --check`: the exit codes the compose healthchecks read."""

from __future__ import annotations

import socket

import orjson

from producer.constants import heartbeat_key
from tests.faults import run_ailedger


def test_worker_check_follows_this_hosts_heartbeats(settings, redis_client) -> None:  # type: ignore[no-untyped-def]
    assert run_ailedger(settings, "worker", "--check", timeout=60).returncode == 1
    # Another host's worker does not make this container healthy.
    other = heartbeat_key(settings.stream, "elsewhere-1-abcdef")
    redis_client.set(other, orjson.dumps({"host": "elsewhere"}), ex=30)
    assert run_ailedger(settings, "worker", "--check", timeout=60).returncode == 1
    here = heartbeat_key(settings.stream, f"{socket.gethostname()}-42-abcdef")
    redis_client.set(here, orjson.dumps({"host": socket.gethostname()}), ex=30)
    result = run_ailedger(settings, "worker", "--check", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "1 worker process(es) alive on this host" in result.stdout


def test_jobs_check_without_a_jobs_worker_is_unhealthy(settings) -> None:  # type: ignore[no-untyped-def]
    result = run_ailedger(settings, "jobs", "--check", timeout=60)
    assert result.returncode == 1
    assert "0 jobs process(es)" in result.stdout

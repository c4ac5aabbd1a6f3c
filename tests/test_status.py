"""`ailedger status`: lag, pending, consumers and heartbeats; thresholds set the exit code."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from ailedger.cli.commands import app
from ailedger.ops.status import Thresholds, queue_status
from producer import AICallLogger
from producer.constants import EVENT_FIELD, dead_letter_stream
from tests.faults import run_ailedger, wait_for
from worker.consumer import Worker


def status_json(settings, *args: str) -> tuple[int, dict[str, Any]]:  # type: ignore[no-untyped-def]
    result = run_ailedger(settings, "status", "--json", *args, timeout=180)
    assert result.returncode in (0, 1), result.stderr[-2000:]
    return result.returncode, orjson.loads(result.stdout)


def log_events(settings, n: int) -> None:  # type: ignore[no-untyped-def]
    logger = AICallLogger(settings.redis_url, stream=settings.stream)
    for i in range(n):
        logger.log(task="product_classification", model="gpt-4o", input_tokens=i % 50)
    assert logger.flush(30)
    logger.close()


def test_waiting_entries_fail_the_threshold_until_a_burst_drains_them(
    settings, redis_client, db
) -> None:
    log_events(settings, 5_000)
    code, found = status_json(settings)
    assert (found["lag"], found["pending"], found["length"]) == (5_000, 0, 5_000)
    # No threshold given, but entries wait and no worker is alive: that is unhealthy.
    assert code == 1 and not found["ok"]
    assert "failing: no live worker while 5000 entries wait" in found["verdict"]

    # A worker took 1,000 entries and died before acknowledging them.
    redis_client.xgroup_create(settings.stream, settings.group, id="0")
    redis_client.xreadgroup(settings.group, "crashed", {settings.stream: ">"}, count=1_000)
    code, found = status_json(settings, "--max-lag", "100")
    assert found["lag"] + found["pending"] == 5_000
    assert (found["lag"], found["pending"]) == (4_000, 1_000)
    assert code == 1 and not found["ok"]
    assert "lag 4000 exceeds --max-lag 100" in found["verdict"]
    [crashed] = found["consumers"]
    assert (crashed["name"], crashed["pending"], crashed["alive"]) == ("crashed", 1_000, False)
    assert found["oldest_pending_age_s"] is not None and found["oldest_pending_age_s"] < 120

    burst = run_ailedger(settings, "worker", "--burst", timeout=180, AILEDGER_CLAIM_IDLE_MS="1")
    assert burst.returncode == 0, burst.stderr[-2000:]
    code, found = status_json(settings, "--max-lag", "100", "--max-pending-age", "60")
    assert (found["lag"], found["pending"]) == (0, 0)
    assert code == 0 and found["ok"] and found["verdict"].startswith("ok")
    assert db.execute("SELECT count(*) FROM ai_call_logs").fetchone() == (5_000,)


def test_a_live_worker_shows_its_heartbeat_and_what_it_processed(settings, redis_client) -> None:
    worker = Worker(settings, consumer="live-worker")
    worker.start()
    try:
        log_events(settings, 300)

        def processed() -> Any:
            found = queue_status(redis_client, settings)
            live = [c for c in found.consumers if c.name == "live-worker"]
            return found if live and live[0].events == 300 and found.waiting == 0 else None

        found = wait_for(processed)
        [consumer] = found.consumers
        assert consumer.alive and consumer.inserted == 300 and consumer.pending == 0
        assert consumer.last_heartbeat_s is not None and consumer.last_heartbeat_s < 10
        assert found.ok and found.verdict == "ok: nothing waiting"
    finally:
        worker.stop(timeout=30)
    found = queue_status(redis_client, settings)
    # Stopped cleanly: nothing pending, heartbeat gone, so it is no longer listed.
    assert found.consumers == () and found.departed_consumers == 1


def test_old_pending_entries_and_dead_letters(settings, redis_client) -> None:
    seconds, _ = redis_client.time()
    old_id = f"{(seconds - 600) * 1000}-0"  # logged ten minutes ago
    redis_client.xadd(settings.stream, {EVENT_FIELD: b"{}"}, id=old_id)
    redis_client.xgroup_create(settings.stream, settings.group, id="0")
    redis_client.xreadgroup(settings.group, "slow", {settings.stream: ">"}, count=1)
    for _ in range(3):
        redis_client.xadd(dead_letter_stream(settings.stream), {b"reason": b"bad"})

    found = queue_status(redis_client, settings, thresholds=Thresholds(max_pending_age_s=60))
    assert 590 <= found.oldest_pending_age_s <= 700  # type: ignore[operator]
    assert found.dead_letter == 3 and found.pending == 1 and found.lag == 0
    assert not found.ok and "over --max-pending-age 60s" in found.problems[0]
    relaxed = queue_status(redis_client, settings, thresholds=Thresholds(max_pending_age_s=3600))
    # Within the age limit, yet nobody is alive to store the entry: still failing.
    assert relaxed.problems == ("no live worker while 1 entries wait",)


def test_an_empty_or_missing_stream_is_fine(settings, redis_client) -> None:
    found = queue_status(redis_client, settings, thresholds=Thresholds(max_lag=0))
    assert (found.length, found.lag, found.pending, found.dead_letter) == (0, 0, 0, 0)
    assert found.ok and found.verdict == "ok: nothing waiting"


def test_the_table_shows_the_figures_and_the_verdict(settings) -> None:
    log_events(settings, 42)
    result = CliRunner().invoke(
        app,
        ["status", "--max-lag", "10"],
        env={"AILEDGER_REDIS_URL": settings.redis_url, "AILEDGER_STREAM": settings.stream},
    )
    assert result.exit_code == 1
    assert "lag (never delivered)" in result.output and "42" in result.output
    assert "lag 42 exceeds --max-lag 10" in result.output


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_unreachable_redis_exits_2_with_a_message(json_flag: list[str]) -> None:
    result = CliRunner().invoke(app, ["status", *json_flag, "--redis-url", "redis://127.0.0.1:1/0"])
    assert result.exit_code == 2
    assert "cannot read the queue" in result.output
    if json_flag:  # a probe reading JSON gets JSON, with the error in it
        found = orjson.loads(result.output)
        assert found["ok"] is False and "cannot read the queue" in found["error"]

"""End to end: producer -> Redis stream -> `ailedger worker` -> Postgres, priced and scored."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal

import orjson
import pytest

from producer import AICallLogger
from producer.constants import EVENT_FIELD, dead_letter_stream
from tests.faults import cli_env, free_port, run_ailedger, wait_for
from worker.consumer import Worker

KNOWN = [
    # model, provider, input, output, expected cost
    ("claude-3-5-sonnet-20241022", "anthropic", 1_000, 500, Decimal("0.0105")),
    ("text-embedding-3-small", None, 37, None, Decimal("0.00000074")),
    ("clip-vit-base-patch32", "local", None, None, None),
]


def test_ten_thousand_events_from_threads_two_worker_processes(settings, db, redis_client) -> None:
    logger = AICallLogger(settings.redis_url, stream=settings.stream)
    per_thread = 2_500

    def service(n: int) -> None:
        for i in range(per_thread):
            model, provider, tokens_in, tokens_out, _ = KNOWN[(n + i) % len(KNOWN)]
            logger.log(
                task=f"task_{n}",
                model=model,
                provider=provider,
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                latency_ms=100 + i,
                confidence_breakdown={"model_confidence": 0.9, "completeness": 0.5},
            )

    threads = [threading.Thread(target=service, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert logger.flush(30)
    logger.close()
    assert redis_client.xlen(settings.stream) == 10_000

    result = run_ailedger(settings, "worker", "--burst", "--processes", "2")
    assert result.returncode == 0, result.stderr[-3000:]

    assert db.execute("SELECT count(*), count(DISTINCT id) FROM ai_call_logs").fetchone() == (
        10_000,
        10_000,
    )
    for model, _provider, _in, _out, expected in KNOWN:
        rows = db.execute(
            "SELECT DISTINCT cost, cost_source FROM ai_call_logs WHERE model = %s", (model,)
        ).fetchall()
        if expected is None:
            assert rows == [(None, "unpriced")]
        else:
            assert rows == [(expected, "catalog")]
    # 0.4*0.9 + 0.2*0.5 over 0.6 = 0.7666.. -> 0.77 and above the 0.70 threshold
    assert db.execute("SELECT DISTINCT confidence_score, action FROM ai_call_logs").fetchall() == [
        (Decimal("0.77"), "use_ai_result")
    ]
    info = redis_client.xinfo_groups(settings.stream)[0]
    assert info["pending"] == 0 and info["lag"] == 0


def test_malformed_entries_are_dead_lettered_and_the_rest_is_stored(
    settings, db, redis_client, run_burst
) -> None:
    good = [
        {
            "id": str(uuid.uuid4()),
            "timestamp": time.time(),
            "task": "t",
            "model": "gpt-4o",
            "input_tokens": 10,
        }
        for _ in range(20)
    ]
    bad = [
        b"{this is not json",
        orjson.dumps({"id": str(uuid.uuid4()), "timestamp": time.time(), "model": "gpt-4o"}),
        orjson.dumps(
            {
                "id": str(uuid.uuid4()),
                "timestamp": time.time(),
                "task": "t",
                "model": "m",
                "input_tokens": -3,
            }
        ),
    ]
    for i, event in enumerate(good):
        redis_client.xadd(settings.stream, {EVENT_FIELD: orjson.dumps(event)})
        if i % 7 == 0:
            redis_client.xadd(settings.stream, {EVENT_FIELD: bad[i // 7]})
    worker = run_burst()
    assert worker.counters.inserted == 20 and worker.counters.rejected == 3
    assert db.execute("SELECT count(*) FROM ai_call_logs").fetchone() == (20,)
    reasons = {
        bytes(raw): reason for raw, reason in db.execute("SELECT raw, reason FROM ai_call_rejects")
    }
    assert set(reasons) == set(bad)  # the raw payload is kept byte for byte
    assert "not valid JSON" in reasons[bad[0]]
    assert "task: Field required" in reasons[bad[1]]
    assert "input_tokens" in reasons[bad[2]] and "greater than or equal to 0" in reasons[bad[2]]
    assert redis_client.xlen(dead_letter_stream(settings.stream)) == 3
    assert redis_client.xinfo_groups(settings.stream)[0]["pending"] == 0


def test_redelivered_batch_is_not_doubled(settings, db, redis_client, run_burst) -> None:
    logger = AICallLogger(settings.redis_url, stream=settings.stream)
    for _ in range(50):
        logger.log(task="t", model="gpt-4o", input_tokens=5)
    assert logger.flush(5)
    logger.close()
    # Deliver the entries to a consumer that "dies" before acknowledging.
    redis_client.xgroup_create(settings.stream, settings.group, id="0")
    delivered = redis_client.xreadgroup(
        settings.group, "dead-consumer", {settings.stream: ">"}, count=50
    )
    # A burst does not call the stream drained while a departed consumer holds entries:
    # it claims them (the consumer left no heartbeat) and stores each once.
    worker = run_burst()
    assert worker.source.claimed == 50
    # The same events delivered again (a worker died after its commit, before XACK):
    # nothing is doubled.
    for _, fields in delivered[0][1]:
        redis_client.xadd(settings.stream, fields)
    run_burst()
    assert db.execute("SELECT count(*), count(DISTINCT id) FROM ai_call_logs").fetchone() == (
        50,
        50,
    )
    assert redis_client.xinfo_groups(settings.stream)[0]["pending"] == 0


def test_sigterm_finishes_the_batch_and_exits_zero(settings, db, redis_client) -> None:
    logger = AICallLogger(settings.redis_url, stream=settings.stream)
    for _ in range(2_000):
        logger.log(task="t", model="gpt-4o", input_tokens=5)
    assert logger.flush(10)
    logger.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ailedger.cli", "worker"],
        env=cli_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: db.execute("SELECT count(*) FROM ai_call_logs").fetchone()[0] == 2_000)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    info = redis_client.xinfo_groups(settings.stream)[0]
    assert info["pending"] == 0


def test_worker_thread_start_stop_join(settings, db) -> None:
    worker = Worker(settings)
    worker.start()
    logger = AICallLogger(settings.redis_url, stream=settings.stream)
    try:
        logger.log(task="t", model="gpt-4o", input_tokens=5)
        assert logger.flush(5)
        wait_for(lambda: db.execute("SELECT count(*) FROM ai_call_logs").fetchone()[0] == 1)
        worker.stop(timeout=10)
        assert worker.join(0)
    finally:
        worker.stop(timeout=10)
        logger.close()


def test_override_price_wins_and_unknown_model_is_unpriced(
    settings, db, redis_client, run_burst
) -> None:
    db.execute(
        "INSERT INTO price_overrides (provider, model, input_mtok, output_mtok)"
        " VALUES ('together', 'acme-private-llm', 1, 2)"
    )
    logger = AICallLogger(settings.redis_url, stream=settings.stream)
    logger.log(
        task="t",
        model="acme-private-llm",
        provider="together",
        input_tokens=1_000_000,
        output_tokens=500_000,
    )
    logger.log(task="t", model="no-such-model-anywhere", input_tokens=10, output_tokens=10)
    assert logger.flush(5)
    logger.close()
    run_burst()
    rows = {
        m: (c, s) for m, c, s in db.execute("SELECT model, cost, cost_source FROM ai_call_logs")
    }
    assert rows["acme-private-llm"] == (Decimal(2), "override")
    assert rows["no-such-model-anywhere"] == (None, "unpriced")


@pytest.mark.parametrize("processes", [1])
def test_burst_on_an_empty_stream_exits_at_once(settings, processes: int) -> None:
    result = run_ailedger(settings, "worker", "--burst", "--processes", str(processes), timeout=30)
    assert result.returncode == 0, result.stderr


def test_postgres_row_refusal_dead_letters_only_that_row(
    settings, db, redis_client, run_burst
) -> None:
    # A constraint the worker does not know about refuses one row; the others must flow.
    db.execute("ALTER TABLE ai_call_logs ADD CONSTRAINT no_forbidden CHECK (task <> 'forbidden')")
    logger = AICallLogger(settings.redis_url, stream=settings.stream)
    for i in range(30):
        logger.log(task="forbidden" if i == 17 else "fine", model="gpt-4o", input_tokens=1)
    assert logger.flush(5)
    logger.close()
    worker = run_burst()
    assert db.execute("SELECT count(*) FROM ai_call_logs").fetchone() == (29,)
    (reason,) = db.execute("SELECT reason FROM ai_call_rejects").fetchone()
    assert "no_forbidden" in reason
    assert worker.counters.rejected == 1
    assert redis_client.xinfo_groups(settings.stream)[0]["pending"] == 0


def test_database_unreachable_keeps_entries_pending(settings, redis_client) -> None:
    broken = settings.model_copy(update={"database_url": "postgresql://127.0.0.1:1/nothing"})
    logger = AICallLogger(settings.redis_url, stream=settings.stream)
    logger.log(task="t", model="gpt-4o", input_tokens=5)
    assert logger.flush(5)
    logger.close()
    worker = Worker(broken, burst=True)
    worker.start()
    try:
        wait_for(lambda: pending(redis_client, settings.stream) == 1)
        # Several failed attempts later: still pending, nothing acknowledged, still running.
        time.sleep(1.0)
        assert pending(redis_client, settings.stream) == 1
        assert worker._thread is not None and worker._thread.is_alive()
        # The heartbeat stays fresh through the outage and says what is down.
        key = f"{settings.stream}:heartbeat:{worker.consumer}"
        wait_for(lambda: orjson.loads(redis_client.get(key) or b"{}").get("down") == ["postgres"])
        beat = orjson.loads(redis_client.get(key))
        assert time.time() - beat["beat_at"] < 5
    finally:
        worker.stop(timeout=10)
    assert pending(redis_client, settings.stream) == 1


def pending(client, stream: str) -> int:  # type: ignore[no-untyped-def]
    groups = client.xinfo_groups(stream)
    return int(groups[0]["pending"]) if groups else 0


@pytest.mark.parametrize("processes", [1, 2])
def test_running_workers_expose_prometheus_metrics(settings, db, processes: int) -> None:
    import urllib.request

    logger = AICallLogger(settings.redis_url, stream=settings.stream)
    for i in range(300):
        logger.log(task="t", model="gpt-4o", input_tokens=i, output_tokens=-1 if i == 7 else 1)
    assert logger.flush(10)
    logger.close()
    port = free_port()
    env = cli_env(settings)
    env["AILEDGER_METRICS_HOST"] = "127.0.0.1"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ailedger.cli",
            "worker",
            "--processes",
            str(processes),
            "--metrics-port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: db.execute("SELECT count(*) FROM ai_call_logs").fetchone()[0] == 299)

        def scrape() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
                return str(page.read().decode())

        def values() -> dict[str, float]:
            found = {}
            for line in scrape().splitlines():
                if line.startswith("ailedger_") and " " in line:
                    name, value = line.rsplit(" ", 1)
                    found[name] = found.get(name, 0.0) + float(value)
            return found

        wait_for(lambda: values().get("ailedger_events_stored_total", 0) == 299)
        found = values()
        assert found["ailedger_events_rejected_total"] == 1
        assert found['ailedger_queue_up{group="ailedger",stream="' + settings.stream + '"}'] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_an_implausible_cost_is_dead_lettered_not_overflowed(settings, db, run_burst) -> None:
    logger = AICallLogger(settings.redis_url, stream=settings.stream)
    logger.log(task="t", model="o1-pro", provider="openai", output_tokens=2_000_000_000)
    logger.log(task="t", model="gpt-4o", input_tokens=10)
    assert logger.flush(5)
    logger.close()
    worker = run_burst()
    assert worker.counters.inserted == 1 and worker.counters.rejected == 1
    (reason,) = db.execute("SELECT reason FROM ai_call_rejects").fetchone()
    assert "not plausible" in reason and "check the token counts" in reason

"""`ailedger reprice`: fill and correct costs after prices change, in the background."""

from __future__ import annotations

import contextlib
import uuid
import zlib
from decimal import Decimal

import redis
from psycopg.conninfo import make_conninfo

from ailedger.ops.reprice import reprice
from producer import AICallLogger
from tests.faults import run_ailedger


def log_and_store(settings, run_burst, calls: list[dict]) -> list[str]:  # type: ignore[no-untyped-def]
    logger = AICallLogger(settings.redis_url, stream=settings.stream)
    ids = [logger.log(**call) for call in calls]
    assert logger.flush(5)
    logger.close()
    run_burst()
    return ids


def costs(db) -> dict[str, tuple[Decimal | None, str]]:  # type: ignore[no-untyped-def]
    return {
        str(i): (c, s) for i, c, s in db.execute("SELECT id, cost, cost_source FROM ai_call_logs")
    }


def test_override_added_later_fills_unpriced_and_leaves_reported_alone(
    settings, db, run_burst
) -> None:
    private, gpt, reported = log_and_store(
        settings,
        run_burst,
        [
            {"task": "t", "model": "acme-llm", "provider": "acme", "input_tokens": 2_000_000},
            {"task": "t", "model": "gpt-4o", "provider": "openai", "input_tokens": 1_000_000},
            {"task": "t", "model": "acme-llm", "provider": "acme", "input_tokens": 1, "cost": "9"},
        ],
    )
    assert costs(db)[private] == (None, "unpriced")
    db.execute(
        "INSERT INTO price_overrides (provider, model, input_mtok) VALUES ('acme', 'acme-llm', 0.5)"
    )
    result = reprice(settings.database_url)
    assert (result.examined, result.changed, result.newly_priced) == (2, 1, 1)
    after = costs(db)
    assert after[private] == (Decimal("1.000000000000"), "override")
    assert after[gpt] == (Decimal("2.500000000000"), "catalog")
    assert after[reported] == (Decimal("9.000000000000"), "reported")
    assert reprice(settings.database_url).changed == 0  # running again changes nothing


def test_queued_reprice_runs_on_the_maintenance_worker(
    settings, db, run_burst, redis_client
) -> None:
    (private,) = log_and_store(
        settings, run_burst, [{"task": "t", "model": "acme-llm", "input_tokens": 1_000_000}]
    )
    db.execute(
        "INSERT INTO price_overrides (model, output_mtok, input_mtok) VALUES ('acme-llm', 1, 3)"
    )
    queued = run_ailedger(settings, "reprice", "--unpriced-only", timeout=60)
    assert queued.returncode == 0 and "queued reprice job" in queued.stdout, queued.stderr
    assert costs(db)[private] == (None, "unpriced")  # queued, not run yet
    worked = run_ailedger(settings, "jobs", "--burst", timeout=120)
    assert worked.returncode == 0, worked.stderr[-2000:]
    assert costs(db)[private] == (Decimal("3.000000000000"), "override")


def redis_values(client: redis.Redis) -> list[bytes]:
    """Every key and value in Redis, RQ's compressed job payloads decompressed too."""
    found: list[bytes] = []
    for key in client.scan_iter(count=1000):
        found.append(key)
        kind = client.type(key)
        if kind == b"string":
            found.append(client.get(key) or b"")
        elif kind == b"hash":
            for field, value in client.hgetall(key).items():
                found += [field, value]
        elif kind == b"list":
            found += client.lrange(key, 0, -1)
        elif kind == b"set":
            found += list(client.smembers(key))
        elif kind == b"zset":
            found += client.zrange(key, 0, -1)
        elif kind == b"stream":
            for _id, fields in client.xrange(key):
                found += [*fields.keys(), *fields.values()]
    for value in list(found):
        with contextlib.suppress(zlib.error):
            found.append(zlib.decompress(value))
    return found


def test_a_queued_reprice_keeps_the_database_password_out_of_redis_and_logs(
    settings, db, run_burst, redis_client
) -> None:
    (private,) = log_and_store(
        settings, run_burst, [{"task": "t", "model": "acme-llm", "input_tokens": 1_000_000}]
    )
    db.execute("INSERT INTO price_overrides (model, input_mtok) VALUES ('acme-llm', 2)")
    password = f"pw-{uuid.uuid4().hex}"
    # The test server trusts local connections, so the password is carried but not checked.
    with_password = make_conninfo(settings.database_url, password=password)
    env = {"AILEDGER_DATABASE_URL": with_password}

    queued = run_ailedger(settings, "reprice", "--unpriced-only", timeout=60, **env)
    assert queued.returncode == 0, queued.stderr
    assert not [v for v in redis_values(redis_client) if password.encode() in v]

    worked = run_ailedger(settings, "jobs", "--burst", timeout=120, **env)
    assert worked.returncode == 0, worked.stderr[-2000:]
    assert password not in worked.stdout + worked.stderr + queued.stdout + queued.stderr
    assert not [v for v in redis_values(redis_client) if password.encode() in v]
    assert costs(db)[private] == (Decimal("2.000000000000"), "override")  # and it did run

"""`ailedger reprice`: fill and correct costs after prices change, in the background."""

from __future__ import annotations

from decimal import Decimal

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

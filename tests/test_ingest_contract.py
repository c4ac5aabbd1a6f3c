"""One contract: the same events through /api/ingest and through the Python producer give
the same rows, column for column."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pydantic import SecretStr

from ailedger.api.app import create_app
from producer import AICallLogger
from tests.ingest_helpers import FREE, TOKENS, bearer, contract_validator, rows_by_id

MODELS = ["gpt-4o-mini", "claude-3-5-haiku-20241022", "text-embedding-3-small", "no-such-model"]
text = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40)
tokens = st.none() | st.integers(0, 2_000_000)
json_leaf = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text
payload = st.dictionaries(
    st.sampled_from(["prompt", "api_key", "Authorization", "max_tokens", "text"]) | text,
    st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3), max_leaves=6),
    max_size=4,
)
optional = {
    "provider": st.sampled_from(["openai", "anthropic", "together"]),
    "input_tokens": tokens,
    "output_tokens": tokens,
    "cache_read_tokens": st.integers(0, 1_000),
    "latency_ms": st.integers(0, 120_000),
    "job_id": st.uuids().map(str),
    "image_id": text,
    "service": text,
    "confidence_breakdown": st.dictionaries(
        st.sampled_from(["model_confidence", "completeness", "consistency", "validation"]),
        st.floats(0, 1),
        min_size=1,
    ),
    "confidence_score": st.decimals("0", "1", places=2).map(str),
    "action": st.sampled_from(["use_ai_result", "fallback_to_rules"]),
    "fallback_reason": text,
    "error_message": text,
    "request_data": payload,
    "response_data": payload,
    "cost": st.decimals("0", "5", places=8).map(str),
}


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": str(draw(st.uuids(version=4))),
        "timestamp": draw(
            st.datetimes(datetime(2020, 1, 1), datetime(2026, 1, 1), timezones=st.just(UTC))
        ),
        # A task that is blank once NULs are cleaned is refused by both paths alike (the
        # producer's is dead-lettered): tested in test_ingest.py, not a row to compare here.
        "task": draw(text.filter(lambda t: t.replace("\x00", "").strip())),
        "model": draw(st.sampled_from(MODELS)),
    }
    for name in draw(st.sets(st.sampled_from(sorted(optional)))):
        event[name] = draw(optional[name])
    return event


def _store(settings: Any, db: Any, run_burst: Any, redis_client: Any) -> dict[str, Any]:
    """Check the stream's entries against the contract, store them, return and clear rows."""
    validator = contract_validator()
    for _, fields in redis_client.xrange(settings.stream):
        validator.validate(orjson.loads(fields[b"e"]))
    run_burst()
    rows = rows_by_id(db)
    for row in rows.values():
        row.pop("created_at")
    db.execute("DELETE FROM ai_call_logs")
    redis_client.delete(settings.stream)
    return rows


@hsettings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(events(), min_size=1, max_size=15, unique_by=lambda e: e["id"]))
def test_ingest_and_the_python_producer_store_identical_rows(
    batch, settings, db, run_burst, redis_client
) -> None:  # type: ignore[no-untyped-def]
    logger = AICallLogger(settings.redis_url, stream=settings.stream)
    for event in batch:
        logger.log(**event)
    assert logger.flush(10)
    logger.close()
    through_producer = _store(settings, db, run_burst, redis_client)

    body = [{**e, "timestamp": e["timestamp"].isoformat()} for e in batch]
    app = create_app(settings.model_copy(update={"ingest_tokens": SecretStr(TOKENS)}))
    with TestClient(app) as client:
        answer = client.post("/api/ingest", json=body, headers=bearer(FREE))
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"accepted": [e["id"] for e in batch], "rejected": []}
    through_ingest = _store(settings, db, run_burst, redis_client)

    assert set(through_producer) == {str(uuid.UUID(e["id"])) for e in batch}
    for event_id, row in through_producer.items():
        assert through_ingest[event_id] == row

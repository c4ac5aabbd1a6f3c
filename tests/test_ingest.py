"""POST /api/ingest: events from any language reach the table as the Python producer's do."""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr

from ailedger.api.app import create_app
from ailedger.ingest.schema import render
from producer import AICallLogger
from tests.faults import RedisServer, free_port
from tests.ingest_helpers import (
    BOUND,
    CONTRACT,
    FREE,
    TOKENS,
    bearer,
    contract_validator,
    rows_by_id,
)

NOW = "2025-05-01T09:13:00Z"


def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "timestamp": NOW,
        "task": "product_enrichment",
        "model": "gpt-4o-mini",
        "provider": "openai",
        "input_tokens": 1_000,
        "output_tokens": 500,
        "latency_ms": 840,
    }
    return {**base, **fields}


@pytest.fixture
def client(settings) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    app = create_app(
        settings.model_copy(
            update={"ingest_tokens": SecretStr(TOKENS), "api_token": SecretStr("admin-token")}
        )
    )
    with TestClient(app) as c:
        yield c


def post(client: TestClient, body: Any, token: str = FREE, **headers: str) -> Any:
    return client.post("/api/ingest", json=body, headers={**bearer(token), **headers})


def test_events_are_stored_priced_and_stamped_with_the_tokens_service(
    client, db, run_burst
) -> None:  # type: ignore[no-untyped-def]
    events = [event(), event(service="someone-else", job_id=str(uuid.uuid4()))]
    answer = post(client, events, token=BOUND)
    assert answer.status_code == 202
    assert answer.json() == {"accepted": [e["id"] for e in events], "rejected": []}
    run_burst()
    rows = rows_by_id(db)
    assert set(rows) == {e["id"] for e in events}
    for row in rows.values():
        # gpt-4o-mini: $0.15 per million input tokens, $0.60 per million output tokens.
        assert row["cost"] == Decimal("0.00045")
        assert row["service"] == "pdf-extractor"  # bound: the event's own claim loses
        assert row["latency_ms"] == 840


def test_an_unbound_token_keeps_the_events_service_or_the_header(client, db, run_burst) -> None:  # type: ignore[no-untyped-def]
    named, unnamed = event(service="vision"), event()
    assert post(client, [named, unnamed], **{"X-AILedger-Service": "batch-jobs"}).status_code == 202
    run_burst()
    rows = rows_by_id(db)
    assert rows[named["id"]]["service"] == "vision"
    assert rows[unnamed["id"]]["service"] == "batch-jobs"


def test_a_bad_event_is_refused_alone_with_a_reason(client, db, run_burst) -> None:  # type: ignore[no-untyped-def]
    good = event()
    no_task = event()
    del no_task["task"]
    bad_tokens = event(input_tokens=-3)
    answer = post(client, [good, no_task, 42, bad_tokens, event(id="not-a-uuid")])
    assert answer.status_code == 202
    body = answer.json()
    assert body["accepted"] == [good["id"]]
    refused = {r["index"]: r for r in body["rejected"]}
    assert sorted(refused) == [1, 2, 3, 4]
    assert refused[1]["id"] == no_task["id"] and "task" in refused[1]["error"]
    assert refused[2]["id"] is None and "JSON object" in refused[2]["error"]
    assert "input_tokens" in refused[3]["error"]
    assert refused[4]["id"] == "not-a-uuid" and "id" in refused[4]["error"]
    run_burst()
    assert set(rows_by_id(db)) == {good["id"]}
    assert db.execute("SELECT count(*) FROM ai_call_rejects").fetchone() == (0,)


def test_missing_id_and_timestamp_are_filled_in(client, db, run_burst) -> None:  # type: ignore[no-untyped-def]
    bare = {"task": "embedding", "model": "text-embedding-3-small", "input_tokens": 37}
    answer = post(client, [bare])
    assert answer.status_code == 202
    (made,) = answer.json()["accepted"]
    run_burst()
    row = rows_by_id(db)[str(uuid.UUID(made))]
    assert row["timestamp"] is not None
    assert row["cost"] == Decimal("0.00000074")  # $0.02 per million tokens


def test_a_retried_request_never_doubles_a_row(client, db, run_burst) -> None:  # type: ignore[no-untyped-def]
    events = [event() for _ in range(50)]
    for _ in range(3):
        assert post(client, events).status_code == 202
    run_burst()
    assert len(rows_by_id(db)) == 50
    calls = db.execute("SELECT sum(calls) FROM ai_call_rollups WHERE grain = 'day'").fetchone()
    assert calls == (50,)


def test_ndjson_gzipped_with_a_broken_line(client, db, run_burst) -> None:  # type: ignore[no-untyped-def]
    events = [event() for _ in range(3)]
    lines = [
        orjson.dumps(events[0]),
        b"{not json",
        orjson.dumps(events[1]),
        b"",
        orjson.dumps(events[2]),
    ]
    answer = client.post(
        "/api/ingest",
        content=gzip.compress(b"\n".join(lines)),
        headers={
            **bearer(FREE),
            "Content-Type": "application/x-ndjson",
            "Content-Encoding": "gzip",
        },
    )
    assert answer.status_code == 202
    body = answer.json()
    assert body["accepted"] == [e["id"] for e in events]
    assert [r["index"] for r in body["rejected"]] == [1]
    assert "line 2 is not valid JSON" in body["rejected"][0]["error"]
    run_burst()
    assert len(rows_by_id(db)) == 3


def test_entries_have_the_producers_wire_format_and_payloads_are_redacted(
    client, redis_client, settings, db, run_burst
) -> None:  # type: ignore[no-untyped-def]
    secret = "sk-proj-" + "a" * 40
    sent = event(request_data={"api_key": secret, "prompt": f"use {secret}"})
    assert post(client, [sent]).status_code == 202
    ((_, fields),) = redis_client.xrange(settings.stream)
    assert set(fields) == {b"e", b"v"} and fields[b"v"] == b"1"
    assert secret.encode() not in fields[b"e"]
    contract_validator().validate(orjson.loads(fields[b"e"]))
    run_burst()
    stored = rows_by_id(db)[sent["id"]]["request_data"]
    assert stored == {"api_key": "[REDACTED]", "prompt": "use [REDACTED]"}


def test_ingest_needs_an_ingest_token(client, settings) -> None:  # type: ignore[no-untyped-def]
    for headers in ({}, bearer("wrong"), bearer("admin-token"), {"Authorization": FREE}):
        answer = client.post("/api/ingest", json=[event()], headers=headers)
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"] == "Bearer"
    with TestClient(create_app(settings)) as unconfigured:
        answer = unconfigured.post("/api/ingest", json=[event()], headers=bearer(FREE))
        assert answer.status_code == 401
        assert "AILEDGER_INGEST_TOKENS" in answer.json()["detail"]


def test_a_gzip_bomb_hits_the_body_limit(client, redis_client, settings) -> None:  # type: ignore[no-untyped-def]
    bomb = gzip.compress(b"[" + b" " * (256 * 1024 * 1024) + b"]", compresslevel=9)
    assert len(bomb) < 1024 * 1024  # small on the wire, 256 MiB unpacked
    answer = client.post(
        "/api/ingest",
        content=bomb,
        headers={**bearer(FREE), "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert answer.status_code == 413
    assert "AILEDGER_INGEST_MAX_BODY_BYTES" in answer.json()["detail"]
    assert redis_client.xlen(settings.stream) == 0


def test_an_oversized_event_gets_413_and_nothing_is_written(client, redis_client, settings) -> None:  # type: ignore[no-untyped-def]
    big = event(response_data={"text": "x" * 300_000})
    answer = post(client, [event(), big])
    assert answer.status_code == 413
    detail = answer.json()["detail"]
    assert "event 1" in detail and "AILEDGER_INGEST_MAX_EVENT_BYTES" in detail
    assert redis_client.xlen(settings.stream) == 0


def test_redis_down_gives_503_with_retry_after(settings) -> None:  # type: ignore[no-untyped-def]
    down = settings.model_copy(
        update={
            "redis_url": f"redis://127.0.0.1:{free_port()}/0",
            "ingest_tokens": SecretStr(TOKENS),
        }
    )
    with TestClient(create_app(down)) as c:
        answer = post(c, [event()])
    assert answer.status_code == 503
    assert int(answer.headers["Retry-After"]) > 0
    assert "send the whole request again" in answer.json()["detail"]


def test_a_partly_written_request_is_503_and_its_retry_stores_each_event_once(
    settings, db, run_burst, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        private = redis.Redis.from_url(server.url)
        # Room for some of the events, not all: Redis refuses the rest mid-pipeline (OOM).
        private.config_set("maxmemory-policy", "noeviction")
        used = int(private.info("memory")["used_memory"])
        private.config_set("maxmemory", str(used + 200_000))
        app_settings = settings.model_copy(
            update={"redis_url": server.url, "ingest_tokens": SecretStr(TOKENS)}
        )
        events = [event(response_data={"text": "y" * 2_000}) for _ in range(300)]
        with TestClient(create_app(app_settings)) as c:
            first = post(c, events)
            assert first.status_code == 503 and "Retry-After" in first.headers
            partial = private.xlen(settings.stream)
            assert 0 < partial < len(events)
            private.config_set("maxmemory", "0")
            assert post(c, events).status_code == 202
        run_burst(redis_url=server.url)
        assert set(rows_by_id(db)) == {e["id"] for e in events}
        private.close()
    finally:
        server.stop()


def test_the_committed_contract_is_what_the_generator_gives() -> None:
    assert CONTRACT.read_text() == render(), (
        "contract/event.schema.json is stale: run"
        " `python -m ailedger.ingest.schema > contract/event.schema.json`"
    )


def test_what_the_python_producer_writes_validates_against_the_contract(
    settings, redis_client
) -> None:  # type: ignore[no-untyped-def]
    logger = AICallLogger(settings.redis_url, stream=settings.stream)
    logger.log(
        task="classify",
        model="claude-3-5-haiku-20241022",
        provider="anthropic",
        input_tokens=812,
        output_tokens=64,
        cache_read_tokens=500,
        latency_ms=930,
        job_id=uuid.uuid4(),
        image_id="img-1",
        cost=Decimal("0.0012"),
        confidence_breakdown={"model_confidence": 0.9, "completeness": 1.0},
        confidence_score=Decimal("0.93"),
        action="use_ai_result",
        request_data={"prompt": "hi", "password": "x"},
        response_data={"ok": True},
    )
    logger.log(
        task="embed",
        model="text-embedding-3-small",
        error_message=ValueError("boom"),
        fallback_reason="provider error",
        action="fallback_to_rules",
    )
    logger.log(
        task="enrich",
        model="gpt-4o",
        response={
            "model": "gpt-4o-2024-08-06",
            "usage": {"prompt_tokens": 10, "completion_tokens": 2},
        },
    )
    assert logger.flush(10)
    logger.close()
    validator = contract_validator()
    entries = redis_client.xrange(settings.stream)
    assert len(entries) == 3
    for _, fields in entries:
        validator.validate(orjson.loads(fields[b"e"]))


def test_the_contract_refuses_what_a_worker_refuses() -> None:
    validator = contract_validator()
    good = event()
    assert validator.is_valid(good)
    for broken in (
        {**good, "input_tokens": -1},
        {**good, "action": "guess"},
        {k: v for k, v in good.items() if k != "model"},
        {**good, "id": "nope"},
    ):
        assert not validator.is_valid(broken)

"""Token and cost figures as a user reads them: provider responses in, the API's answers out.

Each call is logged through the producer from a real SDK response object, stored by a
burst worker and read back through the API. The expectations are the providers' own
figures (OpenAI's ``total_tokens``; Anthropic's four counts) and prices hand-computed from
Anthropic's published $/MTok.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote
from uuid import uuid4, uuid5

import anthropic.types
import pytest
from fastapi.testclient import TestClient
from openai.types.chat import ChatCompletion

import producer
from ailedger.ops.reprice import reprice
from producer import AICallLogger
from producer.jobs import JOB_KEY_NAMESPACE
from tests import test_api
from worker.pricing import PriceBook

AUTH = test_api.AUTH
api = test_api.api  # the API client fixture, with the bearer token
AT = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
RANGE = {"from": "2025-06-01T00:00:00Z", "to": "2025-06-03T00:00:00Z", "bucket": "hour"}
SONNET = "claude-sonnet-4-20250514"
# Anthropic's published price for Claude Sonnet 4, $/MTok: input 3; cache writes are
# 1.25x input for the 5-minute cache and 2x for the 1-hour cache; cache reads 0.1x.
SONNET_INPUT = Decimal(3)
MTOK = Decimal(1_000_000)


def gpt4o_completion() -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
            "object": "chat.completion",
            "created": 1748858400,
            "model": "gpt-4o-2024-08-06",
            "system_fingerprint": "fp_50cad350e4",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "logprobs": None,
                    "message": {"role": "assistant", "content": '{"material": "oak veneer"}'},
                }
            ],
            "usage": {
                "prompt_tokens": 5000,
                "completion_tokens": 300,
                "total_tokens": 5300,
                "prompt_tokens_details": {"cached_tokens": 4096, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
            },
        }
    )


def sonnet_message(**usage: Any) -> anthropic.types.Message:
    return anthropic.types.Message.model_validate(
        {
            "id": "msg_01Aq9w938a90dw8q",
            "type": "message",
            "role": "assistant",
            "model": SONNET,
            "content": [{"type": "text", "text": "Finish: matte lacquer"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
    )


def anthropic_total(message: anthropic.types.Message) -> int:
    """What Anthropic bills and reports: uncached input, cache reads and writes, output."""
    u = message.usage
    cached = (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0)
    return u.input_tokens + cached + u.output_tokens


@pytest.fixture
def log(settings) -> Iterator[AICallLogger]:  # type: ignore[no-untyped-def]
    logger = AICallLogger(settings.redis_url, stream=settings.stream)
    yield logger
    logger.close()


def store(log: AICallLogger, run_burst: Any) -> None:
    assert log.flush(30)
    worker = run_burst()
    assert worker.counters.rejected == 0


def get(api: TestClient, path: str, **params: Any) -> dict[str, Any]:
    response = api.get(path, params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def by(items: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {item[key]: item for item in items}


def test_every_token_figure_is_the_total_the_provider_reported(
    api: TestClient, log: AICallLogger, run_burst: Any
) -> None:
    completion = gpt4o_completion()
    message = sonnet_message(
        input_tokens=200,
        cache_read_input_tokens=4000,
        cache_creation_input_tokens=1000,
        output_tokens=300,
    )
    assert completion.usage is not None
    openai_total = completion.usage.total_tokens
    claude_total = anthropic_total(message)
    assert (openai_total, claude_total) == (5300, 5500)
    job = str(uuid4())
    log.log(task="material_classification", response=completion, job_id=job, timestamp=AT)
    log.log(
        task="image_vision_analysis",
        response=message,
        job_id=job,
        image_id="page-3/figure-1.png",
        timestamp=AT + timedelta(minutes=1),
    )
    store(log, run_burst)

    body = get(api, "/api/admin/ai-metrics", **RANGE)
    assert body["totals"]["tokens"] == openai_total + claude_total
    models = by(body["by_model"], "model")
    assert models["gpt-4o-2024-08-06"]["tokens"] == openai_total
    assert models[SONNET]["tokens"] == claude_total
    tasks = by(body["by_task"], "task")
    assert tasks["material_classification"]["tokens"] == openai_total
    assert tasks["image_vision_analysis"]["tokens"] == claude_total
    (point,) = [p for p in body["timeline"] if p["calls"]]
    assert point["tokens"] == openai_total + claude_total
    assert point["by_model"][SONNET]["tokens"] == claude_total
    assert point["by_model"]["gpt-4o-2024-08-06"]["tokens"] == openai_total

    costs = get(api, f"/api/admin/jobs/{job}/ai-costs")
    assert costs["totals"]["tokens"] == openai_total + claude_total
    assert [c["running_tokens"] for c in costs["calls"]] == [
        openai_total,
        openai_total + claude_total,
    ]
    image = get(api, "/api/admin/images/page-3/figure-1.png/ai-costs")
    assert image["total"]["tokens"] == claude_total
    assert [s["tokens"] for s in image["steps"]] == [claude_total]


def test_one_hour_cache_writes_cost_twice_the_input_rate_five_minute_ones_one_and_a_quarter() -> (
    None
):
    book = PriceBook()
    one_hour = book.price(
        "anthropic",
        SONNET,
        AT,
        input_tokens=1000,
        cache_write_tokens=1000,
        cache_write_1h_tokens=1000,
    )
    five_minutes = book.price("anthropic", SONNET, AT, input_tokens=1000, cache_write_tokens=1000)
    assert one_hour.cost == 1000 * SONNET_INPUT * 2 / MTOK == Decimal("0.006")
    assert five_minutes.cost == 1000 * SONNET_INPUT * Decimal("1.25") / MTOK
    # A mix: each part at its own rate, the rest of the input at the input rate.
    mixed = book.price(
        "anthropic",
        SONNET,
        AT,
        input_tokens=1500,
        cache_write_tokens=1000,
        cache_write_1h_tokens=400,
    )
    expected = 500 * SONNET_INPUT + 400 * 2 * SONNET_INPUT + 600 * Decimal("1.25") * SONNET_INPUT
    assert mixed.cost == expected / MTOK


def test_one_hour_cache_writes_from_the_sdk_object_reach_every_figure(
    api: TestClient, log: AICallLogger, run_burst: Any, db: Any
) -> None:
    message = sonnet_message(
        input_tokens=100,
        cache_creation_input_tokens=3000,
        cache_read_input_tokens=0,
        cache_creation={"ephemeral_1h_input_tokens": 2000, "ephemeral_5m_input_tokens": 1000},
        output_tokens=50,
    )
    job = str(uuid4())
    log.log(task="product_enrichment_stage2", response=message, job_id=job, timestamp=AT)
    # The same counts as JSON, the way a service that stored the raw response logs them.
    log.log(
        task="product_enrichment_stage2",
        response=message.model_dump(mode="json"),
        job_id=job,
        timestamp=AT,
    )
    store(log, run_burst)
    per_call = (
        100 * SONNET_INPUT
        + 2000 * 2 * SONNET_INPUT
        + 1000 * Decimal("1.25") * SONNET_INPUT
        + 50 * Decimal(15)  # output, $15/MTok
    ) / MTOK
    rows = db.execute(
        "SELECT cache_write_tokens, cache_write_1h_tokens, cost FROM ai_call_logs"
    ).fetchall()
    assert rows == [(3000, 2000, per_call)] * 2
    body = get(api, "/api/admin/ai-metrics", **RANGE)
    for stats in (body["totals"], by(body["by_model"], "model")[SONNET], body["by_task"][0]):
        assert (stats["cache_write_tokens"], stats["cache_write_1h_tokens"]) == (6000, 4000)
        assert Decimal(stats["cost"]) == 2 * per_call
    costs = get(api, f"/api/admin/jobs/{job}/ai-costs")
    assert costs["totals"]["cache_write_1h_tokens"] == 4000
    assert [c["cache_write_1h_tokens"] for c in costs["calls"]] == [2000, 2000]


def test_jobs_named_by_integers_and_strings_are_stored_and_found_by_either_name(
    api: TestClient, settings: Any, run_burst: Any, db: Any
) -> None:
    producer.configure(settings.redis_url, stream=settings.stream)
    try:
        with producer.job(42):
            producer.log_call(
                task="material_classification",
                model="gpt-4o-mini",
                input_tokens=1000,
                output_tokens=100,
                image_id=7,
                timestamp=AT,
            )
        with producer.job("upload-42"):
            producer.log_call(
                task="material_classification",
                model="gpt-4o-mini",
                input_tokens=2000,
                output_tokens=200,
                image_id="s3://scans/2025/06/page 1.png",
                timestamp=AT,
            )
        producer.log_call(
            task="embedding", model="text-embedding-3-small", input_tokens=37, job_id=42
        )
        assert producer.default_logger().flush(30)
    finally:
        producer.default_logger().close()
    worker = run_burst()
    assert worker.counters.rejected == 0
    rows = db.execute(
        "SELECT job_id, job_key, cost FROM ai_call_logs ORDER BY input_tokens"
    ).fetchall()
    forty_two = uuid5(JOB_KEY_NAMESPACE, "42")
    upload = uuid5(JOB_KEY_NAMESPACE, "upload-42")
    assert [(r[0], r[1]) for r in rows] == [
        (forty_two, "42"),
        (forty_two, "42"),
        (upload, "upload-42"),
    ]
    assert all(r[2] is not None and r[2] > 0 for r in rows)

    for name, uuid, calls in (("42", forty_two, 2), ("upload-42", upload, 1)):
        for asked in (name, str(uuid)):
            body = get(api, f"/api/admin/jobs/{quote(asked)}/ai-costs")
            assert body["job_id"] == str(uuid)
            assert body["totals"]["calls"] == calls and body["totals"]["unpriced_calls"] == 0
    # gpt-4o-mini: $0.15 input, $0.60 output per MTok; 37 embedding tokens at $0.02/MTok.
    assert Decimal(get(api, "/api/admin/jobs/42/ai-costs")["totals"]["cost"]) == (
        Decimal("0.00021") + Decimal("0.00000074")
    )
    assert get(api, "/api/admin/images/7/ai-costs")["job_ids"] == [str(forty_two)]
    s3 = get(api, f"/api/admin/images/{quote('s3://scans/2025/06/page 1.png')}/ai-costs")
    assert s3["total"]["calls"] == 1 and s3["job_ids"] == [str(upload)]


def test_models_without_a_price_show_no_cost_and_failed_calls_cost_nothing(
    api: TestClient, log: AICallLogger, run_burst: Any
) -> None:
    job = str(uuid4())
    for minute in range(3):  # self-hosted CLIP: no price anywhere
        log.log(
            task="image_embedding",
            model="clip-vit-base-patch32",
            provider="local",
            input_tokens=77,
            job_id=job,
            timestamp=AT + timedelta(minutes=minute),
        )
    # A failed Sonnet call that reported no usage, an hour later: nothing was billed.
    log.log(
        task="image_vision_analysis",
        model=SONNET,
        provider="anthropic",
        error_message="APIStatusError: 529 overloaded",
        timestamp=AT + timedelta(hours=1),
    )
    store(log, run_burst)

    body = get(api, "/api/admin/ai-metrics", **RANGE)
    models = by(body["by_model"], "model")
    clip, sonnet = models["clip-vit-base-patch32"], models[SONNET]
    assert (clip["cost"], clip["unpriced_calls"], clip["calls"]) == (None, 3, 3)
    assert (Decimal(sonnet["cost"]), sonnet["unpriced_calls"], sonnet["no_usage_calls"]) == (
        0,
        0,
        1,
    )
    totals = body["totals"]
    assert (Decimal(totals["cost"]), totals["unpriced_calls"], totals["no_usage_calls"]) == (
        0,
        3,
        1,
    )
    points = {p["start"]: p for p in body["timeline"] if p["calls"]}
    clip_hour, failed_hour = points["2025-06-02T10:00:00Z"], points["2025-06-02T11:00:00Z"]
    assert (clip_hour["cost"], clip_hour["unpriced_calls"]) == (None, 3)
    assert clip_hour["by_model"]["clip-vit-base-patch32"]["cost"] is None
    assert (Decimal(failed_hour["cost"]), failed_hour["unpriced_calls"]) == (0, 0)
    empty = [p for p in body["timeline"] if not p["calls"]]
    assert empty and all(Decimal(p["cost"]) == 0 for p in empty)

    costs = get(api, f"/api/admin/jobs/{job}/ai-costs")
    assert (costs["totals"]["cost"], costs["totals"]["unpriced_calls"]) == (None, 3)
    assert [c["running_cost"] for c in costs["calls"]] == [None, None, None]
    assert [c["cost_source"] for c in costs["calls"]] == ["unpriced"] * 3


def test_reprice_turns_failed_calls_stored_as_unpriced_into_no_usage(
    api: TestClient, db: Any, database_url: str
) -> None:
    # As workers stored them before: a failed Sonnet call without usage, "unpriced".
    db.execute(
        "INSERT INTO ai_call_logs (id, timestamp, task, model, provider, error_message)"
        " VALUES (%s, %s, 'image_vision_analysis', %s, 'anthropic', 'APITimeoutError')",
        (uuid4(), AT, SONNET),
    )
    before = get(api, "/api/admin/ai-metrics", **RANGE)["totals"]
    assert (before["cost"], before["unpriced_calls"]) == (None, 1)
    assert reprice(database_url, only_unpriced=True).changed == 1
    after = get(api, "/api/admin/ai-metrics", **RANGE)["totals"]
    assert (Decimal(after["cost"]), after["unpriced_calls"], after["no_usage_calls"]) == (0, 0, 1)

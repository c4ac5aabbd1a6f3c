"""The demo's traffic: reproducible, valid, and shaped like the platform's real calls."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import groupby

import pytest

from ailedger.demo.traffic import CLIP, PROFILES, TEXT_EMBEDDING, generate_jobs
from producer import AICallLogger
from producer.constants import EVENT_FIELD
from producer.scoring import FALLBACK_TO_RULES, confidence_score, decide_action
from worker.event import ParsedEvent, parse_entry, parse_payload

N = 20_000


@pytest.fixture(scope="module")
def traffic() -> list[dict]:
    return list(generate_jobs(random.Random(7), N))


def as_logged(fields: dict) -> dict:
    """The event as the producer sends it: with an id and a timestamp."""
    return {"id": str(uuid.uuid4()), "timestamp": datetime.now(UTC).isoformat(), **fields}


def test_the_same_seed_gives_the_same_traffic(traffic: list[dict]) -> None:
    assert list(generate_jobs(random.Random(7), N)) == traffic
    assert list(generate_jobs(random.Random(8), 500)) != traffic[:500]


def test_exactly_the_number_of_events_asked_for() -> None:
    for n in (0, 1, 37, 1_000):
        assert len(list(generate_jobs(random.Random(n), n))) == n


def test_every_event_is_accepted_by_the_worker_as_is(traffic: list[dict]) -> None:
    for fields in traffic:
        parsed = parse_payload(as_logged(fields))
        assert isinstance(parsed, ParsedEvent), (fields, parsed)
        assert parsed.notes == {}, (fields, parsed.notes)  # nothing dropped or cleaned


def test_events_logged_through_the_producer_reach_the_stream_valid(
    servers, stream, redis_client
) -> None:
    logger = AICallLogger(servers.redis_url, stream=stream)
    sample = list(generate_jobs(random.Random(1), 2_000))
    for fields in sample:
        logger.log(**fields)
    assert logger.flush(10)
    logger.close()
    entries = redis_client.xrange(stream)
    assert len(entries) == len(sample)
    for (_id, raw), fields in zip(entries, sample, strict=True):
        parsed = parse_entry(raw)
        assert isinstance(parsed, ParsedEvent), (raw[EVENT_FIELD], parsed)
        assert parsed.event["task"] == fields["task"]
        assert parsed.event.get("input_tokens") == fields.get("input_tokens")


def test_the_mix_of_services_and_models(traffic: list[dict]) -> None:
    tasks = Counter(e["task"] for e in traffic)
    models = Counter(e["model"] for e in traffic)
    assert set(tasks) == set(PROFILES)
    # Text chunks outnumber everything else; every PDF has far more chunks than products.
    assert tasks.most_common(1)[0][0] == "text_embedding"
    assert 0.25 < tasks["text_embedding"] / N < 0.5
    assert tasks["image_embedding"] == pytest.approx(tasks["image_vision_analysis"], rel=0.1)
    assert tasks["product_classification"] == pytest.approx(
        tasks["product_enrichment_stage2"], rel=0.1
    )
    assert len(models) == 5
    providers = {(e["model"], e["provider"]) for e in traffic}
    assert (TEXT_EMBEDDING, "openai") in providers
    assert (CLIP, "local") in providers
    assert {p for m, p in providers if m.startswith("claude")} == {"anthropic"}
    assert {p for m, p in providers if "Llama-4-Scout" in m} == {"together"}


def test_tokens_and_latencies_are_realistic(traffic: list[dict]) -> None:
    embeddings = [e for e in traffic if e["task"] == "text_embedding" and "input_tokens" in e]
    chunk_tokens = sorted(e["input_tokens"] for e in embeddings)
    assert 10 < chunk_tokens[len(chunk_tokens) // 2] < 500  # tens to hundreds per chunk
    assert not any("output_tokens" in e for e in embeddings)
    assert not any("input_tokens" in e for e in traffic if e["model"] == CLIP)
    vision = [e for e in traffic if e["task"] == "image_vision_analysis" and "input_tokens" in e]
    assert all(1_000 < e["input_tokens"] < 4_000 for e in vision)  # an image is ~1.6k tokens
    latency = {
        task: sorted(e["latency_ms"] for e in traffic if e["task"] == task) for task in PROFILES
    }
    median = {task: values[len(values) // 2] for task, values in latency.items()}
    assert median["image_embedding"] < median["text_embedding"] < 300
    assert median["product_enrichment_stage2"] > 5 * median["product_classification"]
    assert all(e["latency_ms"] >= 1 for e in traffic)


def test_prompt_caching_only_where_the_provider_offers_it(traffic: list[dict]) -> None:
    cached = [e for e in traffic if "cache_read_tokens" in e or "cache_write_tokens" in e]
    assert cached
    assert {e["provider"] for e in cached} == {"anthropic"}
    for e in cached:  # input_tokens counts the whole input, the cached part included
        assert e["input_tokens"] > e.get("cache_read_tokens", 0) + e.get("cache_write_tokens", 0)
    for job, events in groupby(traffic, key=lambda e: e["job_id"]):
        stage2 = [
            e for e in events if e["task"] == "product_enrichment_stage2" and "input_tokens" in e
        ]
        if stage2:  # the first call of a job writes the prompt cache, the others read it
            assert "cache_write_tokens" in stage2[0], job
            assert all("cache_read_tokens" in e for e in stage2[1:]), job


def test_calls_are_grouped_into_pdf_jobs(traffic: list[dict]) -> None:
    runs = [job for job, _ in groupby(traffic, key=lambda e: e["job_id"])]
    assert len(runs) == len(set(runs))  # each job's calls come together
    assert 50 < N / len(runs) < 300
    images = [e for e in traffic if e["task"].startswith("image_")]
    assert all(e["image_id"].startswith(e["job_id"][:8]) for e in images)


def test_a_few_percent_errors_and_fallbacks(traffic: list[dict]) -> None:
    errors = [e for e in traffic if "error_message" in e]
    assert 0.005 < len(errors) / N < 0.05
    assert any("429" in e["error_message"] for e in errors)
    assert any("timed out" in e["error_message"] for e in errors)
    assert all("confidence_breakdown" not in e for e in errors)
    # What the worker will store: the service's action where it reported one, else derived.
    fallbacks = 0
    for e in traffic:
        action = (
            e.get("action")
            or decide_action(
                confidence_score(e.get("confidence_breakdown")), error=e.get("error_message")
            )[0]
        )
        fallbacks += action == FALLBACK_TO_RULES
    assert 0.02 < fallbacks / N < 0.12


def test_most_actions_are_left_to_the_worker(traffic: list[dict]) -> None:
    explicit = [e for e in traffic if "action" in e]
    assert 0.01 < len(explicit) / N < 0.2
    scored = [e for e in explicit if "confidence_score" in e]
    assert scored
    for e in scored:  # the service scored with the same function the worker uses
        assert e["confidence_score"] == confidence_score(e["confidence_breakdown"])
    assert all("fallback_reason" in e for e in explicit if e["action"] == FALLBACK_TO_RULES)


def test_simulated_time_spreads_jobs_and_orders_calls() -> None:
    start = datetime(2025, 3, 1, 8, tzinfo=UTC)
    events = list(generate_jobs(random.Random(3), 3_000, start=start, jobs_per_hour=60))
    assert all(
        isinstance(parse_payload({"id": str(uuid.uuid4()), **e}), ParsedEvent) for e in events
    )
    for _job, calls in groupby(events, key=lambda e: e["job_id"]):
        stamps = [e["timestamp"] for e in calls]
        assert stamps == sorted(stamps)
    assert start == events[0]["timestamp"]
    assert timedelta(minutes=10) < events[-1]["timestamp"] - start < timedelta(days=1)

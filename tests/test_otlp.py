"""OpenTelemetry in: GenAI spans exported by the real OTLP/HTTP exporter become priced rows."""

from __future__ import annotations

import gzip
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode
from pydantic import SecretStr

from ailedger.api.app import create_app
from ailedger.ingest.spans import SpanView, span_to_event
from tests.faults import cli_env, free_port, wait_for
from tests.ingest_helpers import BOUND, FREE, TOKENS, bearer, rows_by_id

START_NS = 1_746_090_780_000_000_000  # 2025-05-01T09:13:00Z
JOB = str(uuid.uuid4())


@pytest.fixture
def serve(settings) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A live `ailedger serve` with ingest tokens; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ailedger.cli", "serve", "--port", str(port)],
        env={**cli_env(settings), "AILEDGER_INGEST_TOKENS": TOKENS},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(answers, what="ailedger serve answering")
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def traced_calls() -> list[ReadableSpan]:
    """What an instrumented service records: two GenAI calls, one failed, and an HTTP span."""
    provider = TracerProvider(resource=Resource.create({"service.name": "catalog-api"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    request = tracer.start_span("GET /products", start_time=START_NS)
    chat = tracer.start_span(
        "chat gpt-4o-mini",
        start_time=START_NS,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 2_000,
            "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.cache_read.input_tokens": 1_000,
            "ailedger.task": "product_enrichment",
            "ailedger.job_id": JOB,
            "ailedger.image_id": "img-42",
            "ailedger.confidence.model_confidence": 0.9,
            "ailedger.confidence.completeness": 0.5,
        },
    )
    chat.end(end_time=START_NS + 1_234_000_000)
    failed = tracer.start_span(
        "chat",
        start_time=START_NS + 2_000_000_000,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",  # the older spelling of gen_ai.provider.name
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.prompt_tokens": 100,  # older spellings too
            "gen_ai.usage.completion_tokens": 0,
        },
    )
    failed.record_exception(ValueError("rate limited"))
    failed.set_status(Status(StatusCode.ERROR))
    failed.end(end_time=START_NS + 2_050_000_000)
    request.set_attribute("http.route", "/products")
    request.end(end_time=START_NS + 3_000_000_000)
    return list(memory.get_finished_spans())


def test_an_otlp_exporter_logs_priced_calls_and_a_re_export_never_doubles(
    serve, db, run_burst, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # The configuration the README gives, read by the exporter itself.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{serve}/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{FREE}")
    spans = traced_calls()
    assert OTLPSpanExporter().export(spans) == SpanExportResult.SUCCESS
    gzipped = OTLPSpanExporter(compression=Compression.Gzip)
    assert gzipped.export(spans) == SpanExportResult.SUCCESS  # the same spans again
    run_burst()
    rows = sorted(rows_by_id(db).values(), key=lambda r: r["timestamp"])
    assert len(rows) == 2  # the HTTP span is not an AI call
    chat, failed = rows
    assert chat["task"] == "product_enrichment" and chat["model"] == "gpt-4o-mini"
    assert str(chat["job_id"]) == JOB and chat["image_id"] == "img-42"
    assert chat["service"] == "catalog-api"
    assert chat["timestamp"].isoformat() == "2025-05-01T09:13:00+00:00"
    assert chat["latency_ms"] == 1_234
    assert (chat["input_tokens"], chat["output_tokens"], chat["cache_read_tokens"]) == (
        2_000,
        300,
        1_000,
    )
    # gpt-4o-mini: 1,000 uncached input at $0.15/M, 1,000 cached at $0.075/M, 300 output
    # at $0.60/M: 0.00015 + 0.000075 + 0.00018.
    assert chat["cost"] == Decimal("0.000405")
    assert chat["confidence_breakdown"] == {"model_confidence": 0.9, "completeness": 0.5}
    assert chat["confidence_score"] == Decimal("0.77")  # (0.4·0.9 + 0.2·0.5) / 0.6 = 0.7667
    assert failed["task"] == "chat"
    assert failed["error_message"] == "ValueError: rate limited"
    assert failed["action"] == "fallback_to_rules"
    assert failed["latency_ms"] == 50
    assert failed["cost"] == Decimal("0.000015")  # 100 input tokens at $0.15/M


@pytest.fixture
def client(settings) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(
        create_app(settings.model_copy(update={"ingest_tokens": SecretStr(TOKENS)}))
    ) as c:
        yield c


def otlp_json(*spans: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "ocr"}}]
                },
                "scopeSpans": [{"scope": {"name": "t"}, "spans": list(spans)}],
            }
        ]
    }


def json_span(span_id: str, **attributes: Any) -> dict[str, Any]:
    def value(v: Any) -> dict[str, Any]:
        if isinstance(v, int):
            return {"intValue": str(v)}
        return {"stringValue": v}

    return {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": span_id,
        "name": "chat claude",
        "startTimeUnixNano": str(START_NS),
        "endTimeUnixNano": str(START_NS + 700_000_000),
        "attributes": [{"key": k, "value": value(v)} for k, v in attributes.items()],
        "status": {},
    }


def test_otlp_json_with_a_span_that_cannot_be_an_event_gets_partial_success(
    client, db, run_burst
) -> None:  # type: ignore[no-untyped-def]
    good = json_span(
        "eee19b7ec3c1b174",
        **{
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "claude-3-5-haiku-20241022",
            "gen_ai.response.model": "claude-3-5-haiku-20241022",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.usage.input_tokens": 1_000,
            "gen_ai.usage.output_tokens": 100,
        },
    )
    no_model = json_span("eee19b7ec3c1b175", **{"gen_ai.operation.name": "chat"})
    body = gzip.compress(orjson.dumps(otlp_json(good, no_model)))
    answer = client.post(
        "/v1/traces",
        content=body,
        headers={
            **bearer(BOUND),
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    assert answer.status_code == 200
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1"
    assert "eee19b7ec3c1b175" in partial["errorMessage"] and "model" in partial["errorMessage"]
    run_burst()
    (row,) = rows_by_id(db).values()
    assert row["task"] == "chat claude" and row["latency_ms"] == 700
    assert row["service"] == "pdf-extractor"  # the bound token wins over service.name
    # claude-3-5-haiku: $0.80/M input, $4/M output.
    assert row["cost"] == Decimal("0.0012")


def test_otlp_needs_an_ingest_token_and_otlp_content(client) -> None:  # type: ignore[no-untyped-def]
    answer = client.post("/v1/traces", content=b"", headers={"Content-Type": "application/json"})
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
    answer = client.post(
        "/v1/traces", content=b"x", headers={**bearer(FREE), "Content-Type": "text/plain"}
    )
    assert answer.status_code == 415
    answer = client.post(
        "/v1/traces",
        content=b"\x0a\xff\xff",
        headers={**bearer(FREE), "Content-Type": "application/x-protobuf"},
    )
    assert answer.status_code == 400 and "ExportTraceServiceRequest" in answer.json()["detail"]


def view(name: str, **attributes: Any) -> SpanView:
    return SpanView("ab" * 16, "cd" * 8, name, START_NS, START_NS + 10**6, attributes)


def test_the_span_id_gives_the_same_event_id_every_time() -> None:
    first = span_to_event(view("chat gpt-4o", **{"gen_ai.request.model": "gpt-4o"}))
    again = span_to_event(view("chat gpt-4o", **{"gen_ai.request.model": "gpt-4o"}))
    other = span_to_event(
        SpanView("ab" * 16, "ce" * 8, "chat", START_NS, START_NS, {"gen_ai.request.model": "x"})
    )
    assert first["id"] == again["id"] != other["id"]
    assert uuid.UUID(first["id"]).version == 5


def test_a_span_without_a_task_is_named_after_its_operation() -> None:
    assert span_to_event(view("gpt-4o", **{"gen_ai.operation.name": "chat"}))["task"] == (
        "chat gpt-4o"
    )
    assert (
        span_to_event(
            view("embeddings text-embedding-3-small", **{"gen_ai.operation.name": "embeddings"})
        )["task"]
        == "embeddings text-embedding-3-small"
    )

"""``POST /v1/traces``: OpenTelemetry's OTLP/HTTP trace export, as ailedger events.

Point any OpenTelemetry SDK's OTLP/HTTP exporter here (protobuf or JSON, gzip or not)
with an ingest token in its headers; GenAI spans become events (see
:mod:`ailedger.ingest.spans`), other spans are skipped. The answer is an
``ExportTraceServiceResponse``, in the request's encoding, whose ``partial_success``
counts and explains the spans that could not be taken.
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from ailedger.ingest.body import authorize, read_body, settings_of
from ailedger.ingest.spans import (
    SpanFormatError,
    is_ai_call,
    span_to_event,
    spans_from_json,
    spans_from_protobuf,
)
from ailedger.ingest.stream import Intake, admit, write_or_retry_later
from ailedger.ingest.tokens import Grant

router = APIRouter(tags=["ingest"])

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
#: How many refused spans the answer names; the count covers them all.
_REASONS_SHOWN = 5


def _export(request: Request, body: bytes, protobuf: bool, grant: Grant) -> bytes:
    settings = settings_of(request)
    try:
        spans = list(spans_from_protobuf(body) if protobuf else spans_from_json(body))
    except SpanFormatError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    calls = [span for span in spans if is_ai_call(span)]
    intake = admit(
        Intake(),
        ((index, span_to_event(span)) for index, span in enumerate(calls)),
        grant=grant,
        max_payload_bytes=settings.ingest_max_payload_bytes,
    )
    write_or_retry_later(request.app.state.backends.redis(), settings.stream, intake.payloads)
    answer = ExportTraceServiceResponse()
    if intake.rejected:
        answer.partial_success.rejected_spans = len(intake.rejected)
        answer.partial_success.error_message = "; ".join(
            f"{calls[r['index']].label}: {r['error']}" for r in intake.rejected[:_REASONS_SHOWN]
        )
    if protobuf:
        encoded: bytes = answer.SerializeToString()
        return encoded
    if not intake.rejected:
        return b"{}"
    return orjson.dumps(
        {
            "partialSuccess": {
                "rejectedSpans": str(answer.partial_success.rejected_spans),
                "errorMessage": answer.partial_success.error_message,
            }
        }
    )


@router.post(
    "/v1/traces",
    responses={
        200: {"description": "ExportTraceServiceResponse (protobuf or JSON, as sent)."},
        400: {"description": "The body is not an ExportTraceServiceRequest."},
        401: {"description": "No valid ingest token (AILEDGER_INGEST_TOKENS)."},
        413: {"description": "The body is over AILEDGER_INGEST_MAX_BODY_BYTES."},
        415: {"description": "Neither application/x-protobuf nor application/json."},
        503: {"description": "Redis is away: the exporter retries after Retry-After."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "An OTLP ExportTraceServiceRequest, protobuf or its JSON mapping.",
            "content": {
                PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
                JSON: {"schema": {"type": "object"}},
            },
        }
    },
)
async def export_traces(request: Request, grant: Annotated[Grant, Depends(authorize)]) -> Response:
    """OTLP/HTTP trace export: GenAI spans become events; other spans are skipped."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in {PROTOBUF, JSON}:
        raise HTTPException(
            status_code=415,
            detail=f"Content-Type {content_type!r} is not OTLP; send {PROTOBUF} or {JSON}",
        )
    body = await read_body(request, settings_of(request).ingest_max_body_bytes)
    protobuf = content_type == PROTOBUF
    answer = await run_in_threadpool(_export, request, body, protobuf, grant)
    return Response(answer, media_type=content_type)

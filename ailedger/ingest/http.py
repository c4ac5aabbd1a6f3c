"""``POST /api/ingest``: events from any language, in the Python producer's contract.

A JSON array of events (or one object), or NDJSON (``application/x-ndjson``), optionally
gzipped. Each event is checked as a worker will check it; the good ones are written to
the stream in one pipelined round trip and the answer (202) comes only after Redis took
them all. A bad event is refused alone, with its index and a reason; the rest of the
request is still accepted. Retrying a request is safe: the event id is the idempotency
key all the way to the table's primary key.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ailedger.ingest.body import authorize, read_body, settings_of, too_large
from ailedger.ingest.stream import Intake, admit, write_or_retry_later
from ailedger.ingest.tokens import Grant

router = APIRouter(tags=["ingest"])

_NDJSON = {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonl"}
_JSON = {"application/json", ""}


class IngestRejection(BaseModel):
    index: int = Field(description="Position of the event in the request (0-based).")
    id: str | None = Field(description="The event's id, when it had one as text.")
    error: str = Field(description="What is wrong with the event and what to change.")


class IngestAnswer(BaseModel):
    accepted: list[str] = Field(description="Ids of the events written to the stream.")
    rejected: list[IngestRejection]


def _items(body: bytes, content_type: str, max_event: int) -> tuple[list[tuple[int, Any]], Intake]:
    """``(index, event)`` pairs of the body; lines that are not JSON are refused already."""
    intake = Intake()
    items: list[tuple[int, Any]] = []
    oversize: list[int] = []
    if content_type in _NDJSON:
        lines = [line for line in body.split(b"\n") if line.strip()]
        for index, line in enumerate(lines):
            if len(line) > max_event:
                oversize.append(index)
                continue
            try:
                items.append((index, orjson.loads(line)))
            except orjson.JSONDecodeError as exc:
                intake.reject(index, None, f"line {index + 1} is not valid JSON: {exc}")
    else:
        try:
            decoded = orjson.loads(body) if body.strip() else []
        except orjson.JSONDecodeError as exc:
            raise HTTPException(
                status_code=400,
                detail=f"body is not valid JSON ({exc}); send an array of event objects,"
                " or NDJSON with Content-Type: application/x-ndjson",
            ) from None
        events = decoded if isinstance(decoded, list) else [decoded]
        for index, item in enumerate(events):
            if isinstance(item, dict) and len(orjson.dumps(item)) > max_event:
                oversize.append(index)
            else:
                items.append((index, item))
    if oversize:
        shown = ", ".join(str(i) for i in oversize[:10])
        raise too_large(
            f"event {shown} (0-based index)" if len(oversize) == 1 else f"events {shown}",
            max_event,
            "AILEDGER_INGEST_MAX_EVENT_BYTES",
            "keep request_data and response_data small; nothing of this request was written",
        )
    return items, intake


def _ingest(
    request: Request, body: bytes, content_type: str, grant: Grant, service: str | None
) -> bytes:
    settings = settings_of(request)
    items, intake = _items(body, content_type, settings.ingest_max_event_bytes)
    admit(
        intake,
        items,
        grant=grant,
        service=service,
        max_payload_bytes=settings.ingest_max_payload_bytes,
    )
    write_or_retry_later(request.app.state.backends.redis(), settings.stream, intake.payloads)
    intake.rejected.sort(key=lambda r: r["index"])
    return orjson.dumps({"accepted": intake.accepted, "rejected": intake.rejected})


@router.post(
    "/api/ingest",
    status_code=202,
    response_model=IngestAnswer,
    responses={
        401: {"description": "No valid ingest token (AILEDGER_INGEST_TOKENS)."},
        413: {"description": "The body or one event is over its limit; nothing was written."},
        503: {"description": "Redis is away: nothing to count on, send again after Retry-After."},
    },
)
async def ingest(
    request: Request,
    grant: Annotated[Grant, Depends(authorize)],
    x_ailedger_service: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """Write events to the stream: a JSON array, or NDJSON; gzip welcome.

    Events follow contract/event.schema.json; one without ``id`` gets one, one without
    ``timestamp`` gets the receive time less its ``latency_ms``. A token bound to a service
    stamps it on every event; otherwise ``X-AILedger-Service`` names the service of events
    that do not.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _JSON and content_type not in _NDJSON:
        raise HTTPException(
            status_code=415,
            detail=f"Content-Type {content_type!r} is not accepted; send application/json"
            " (an array of events) or application/x-ndjson (one event per line)",
        )
    body = await read_body(request, settings_of(request).ingest_max_body_bytes)
    service = x_ailedger_service.strip() if x_ailedger_service else None
    answer = await run_in_threadpool(_ingest, request, body, content_type, grant, service)
    return Response(answer, status_code=202, media_type="application/json")

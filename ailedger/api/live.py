"""A job's calls as they are stored: server-sent events, and polling with an ETag.

``GET /api/jobs/{id}/events`` is a ``text/event-stream``: one ``calls`` event with the
job's calls so far and its totals, then one per batch of newly stored calls, read
every ``POLL_S``. Each event's id is the number of calls sent, so a client that
reconnects asks for ``?offset=<last id>`` (or sends ``Last-Event-ID``) and misses
nothing. ``GET /api/jobs/{id}/calls`` is the same answer for polling: it carries an
ETag and answers 304 to ``If-None-Match`` while nothing changed.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ailedger.api import costs
from ailedger.api import models as m
from ailedger.api.paths import MAX_OFFSET, Stored

#: How often a stream looks for new calls, and sends a comment to keep proxies open.
POLL_S = 0.5
KEEPALIVE_S = 15.0
#: A stream ends after this long; the client reconnects from where it was.
MAX_STREAM_S = 600.0
_PAGE = 1_000

router = APIRouter(tags=["dashboard"])


def _read(request: Request, job_id: str, offset: int) -> m.JobCosts:
    backends: Any = request.app.state.backends
    with backends.pool().connection() as conn:
        return costs.job_costs(conn, job_id, offset=offset, limit=_PAGE)


@router.get(
    "/api/jobs/{job_id:key}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def job_events(
    request: Request,
    job_id: Annotated[
        Stored, Path(description="The processing job (PDF upload): its UUID or its key.")
    ],
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Calls already received.")] = 0,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """The job's calls from ``offset`` on, then each new one, as server-sent events."""
    if last_event_id and last_event_id.isdigit():
        offset = max(offset, int(last_event_id))

    async def events() -> AsyncIterator[bytes]:
        sent, first = offset, True
        started = quiet_since = time.monotonic()
        yield b"retry: 1000\n\n"
        while time.monotonic() - started < MAX_STREAM_S:
            answer = await run_in_threadpool(_read, request, job_id, sent)
            if answer.calls or first:
                sent += len(answer.calls)
                body = answer.model_dump_json()
                yield f"id: {sent}\nevent: calls\ndata: {body}\n\n".encode()
                first, quiet_since = False, time.monotonic()
                if answer.has_more:
                    continue
            elif time.monotonic() - quiet_since > KEEPALIVE_S:
                yield b": still here\n\n"
                quiet_since = time.monotonic()
            if await request.is_disconnected():
                return
            await anyio.sleep(POLL_S)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/api/jobs/{job_id:key}/calls", response_model=m.JobCosts)
def job_calls(
    request: Request,
    job_id: Annotated[
        Stored, Path(description="The processing job (PDF upload): its UUID or its key.")
    ],
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The job's calls from ``offset`` with totals; 304 while ``If-None-Match`` still holds."""
    body = _read(request, job_id, offset).model_dump_json().encode()
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if if_none_match and etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)

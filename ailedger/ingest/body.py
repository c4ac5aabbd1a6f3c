"""Reading an ingest request: the bearer token, then the body within its limit, gunzipped.

The token is checked before a byte of the body is read, so nobody without one makes the
server decompress anything. Decompression is bounded: output is produced at most one
byte past the limit, so a gzip bomb costs the limit, never the memory it would unpack to.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from fastapi import HTTPException, Request

from ailedger.ingest.tokens import Grant, IngestTokens

if TYPE_CHECKING:
    from ailedger.settings import Settings

_GZIP = {"gzip", "x-gzip"}


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.backends.settings
    return settings


def _grants(request: Request) -> IngestTokens:
    state = request.app.state
    tokens: IngestTokens | None = getattr(state, "ingest_tokens", None)
    if tokens is None:
        tokens = state.ingest_tokens = settings_of(request).ingest_grants()
    return tokens


def unauthorized(message: str) -> HTTPException:
    return HTTPException(status_code=401, detail=message, headers={"WWW-Authenticate": "Bearer"})


def authorize(request: Request) -> Grant:
    """The grant of the request's ingest token; 401 without a valid one."""
    tokens = _grants(request)
    if not tokens:
        raise unauthorized(
            "ingest is off: no ingest tokens are configured; set AILEDGER_INGEST_TOKENS"
            " ('token' or 'service:token', comma-separated) on the server"
        )
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise unauthorized("missing ingest token: send Authorization: Bearer <ingest token>")
    grant = tokens.check(presented.strip())
    if grant is None:
        raise unauthorized("wrong ingest token: use one of the server's AILEDGER_INGEST_TOKENS")
    return grant


def too_large(what: str, limit: int, setting: str, advice: str) -> HTTPException:
    return HTTPException(
        status_code=413,
        detail=f"{what} is over the {limit:,}-byte limit ({setting}); {advice}",
    )


def _body_too_large(limit: int) -> HTTPException:
    return too_large(
        "request body", limit, "AILEDGER_INGEST_MAX_BODY_BYTES", "send smaller batches"
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, gunzipped when ``Content-Encoding: gzip``; 413 past ``limit`` bytes."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in _GZIP and encoding not in {"", "identity"}:
        raise HTTPException(
            status_code=415,
            detail=f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding",
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _body_too_large(limit)
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding in _GZIP else None
    out = bytearray()
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _body_too_large(limit)
        if inflater is None:
            out += chunk
            continue
        data = chunk
        try:
            while data:
                out += inflater.decompress(data, limit - len(out) + 1)
                if len(out) > limit:
                    raise _body_too_large(limit)
                data = inflater.unconsumed_tail
                if inflater.eof and (rest := inflater.unused_data):
                    # A gzip stream may hold several members, one after another.
                    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    data = rest
        except zlib.error as exc:
            raise HTTPException(
                status_code=400, detail=f"body is not valid gzip ({exc}); check Content-Encoding"
            ) from None
    if inflater is not None and received and not inflater.eof:
        raise HTTPException(status_code=400, detail="gzip body ends early: it was cut off")
    return bytes(out)

"""Every ingest endpoint, for ``ailedger serve``'s app: events (``/api/ingest``), OTLP traces."""

from __future__ import annotations

from fastapi import APIRouter

from ailedger.ingest import http, otlp

router = APIRouter()
router.include_router(http.router)
router.include_router(otlp.router)

"""Cross-origin reads for the embeddable elements, off unless origins are configured.

``AILEDGER_API_CORS_ORIGINS`` lists the exact origins (``https://app.example.com``,
comma-separated) of the front ends that embed ``<ailedger-job-costs>`` and
``<ailedger-image-costs>``. Only the reads those elements make answer them: a job's
costs, its live stream and polling, an image's costs. The token travels as an
``Authorization`` header, never a cookie, so credentials are never allowed and
``*`` is refused: a page from anywhere could otherwise read costs with a leaked token.
"""

from __future__ import annotations

import re

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from worker.errors import ConfigurationError

#: The paths the custom elements read (their job and image views, and the live job).
ELEMENT_READS = re.compile(
    r"^/api/admin/(jobs/.+/ai-costs|images/.+/ai-costs)$|^/api/jobs/.+/(events|calls)$", re.S
)


def parse_origins(text: str | None) -> tuple[str, ...]:
    """``https://a.example, http://localhost:5173`` -> exact origins; refuses ``*`` and paths."""
    origins = tuple(o.strip().rstrip("/") for o in (text or "").split(",") if o.strip())
    for origin in origins:
        if not re.fullmatch(r"https?://[^/\s*]+", origin):
            raise ConfigurationError(
                f"AILEDGER_API_CORS_ORIGINS: {origin!r} is not an exact origin; give each as "
                "scheme://host[:port] (e.g. https://app.example.com), comma-separated, no '*'"
            )
    return origins


class ElementCors:
    """CORS for :data:`ELEMENT_READS` only; every other path is same-origin as before."""

    def __init__(self, app: ASGIApp, origins: tuple[str, ...]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=list(origins),
            allow_methods=["GET"],
            allow_headers=["Authorization", "Accept", "If-None-Match", "Last-Event-ID"],
            expose_headers=["ETag"],
            allow_credentials=False,
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and ELEMENT_READS.match(scope.get("path", "")):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)

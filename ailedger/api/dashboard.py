"""The dashboard's pages and assets, served by `ailedger serve` next to the API.

The built front end (``dashboard/`` in the repository, built into
``ailedger/api/dashboard/``) ships inside the package: no Node at install time and
nothing from another origin. Pages and assets are public; every data call they make
sends the API token. Each answer carries a Content-Security-Policy that allows only
this origin's scripts, styles and connections, and no inline script.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Where the built front end lives inside the package.
BUILT = Path(__file__).with_name("dashboard")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
#: Paths of the dashboard's views: each answers with the same page, which routes itself.
VIEW_PATHS = ("/", "/jobs", "/jobs/{job_id}", "/budgets", "/images/{image_id:path}")
_SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

router = APIRouter(include_in_schema=False)


def _index() -> Response:
    index = BUILT / "index.html"
    if not index.is_file():
        return PlainTextResponse(
            "the dashboard is not built: run `make dashboard` in the repository",
            status_code=503,
        )
    return FileResponse(index, media_type="text/html", headers={"Cache-Control": "no-cache"})


for _path in VIEW_PATHS:
    router.add_api_route(_path, _index, methods=["GET"])


@router.get("/elements.js")
def elements() -> Response:
    """The embeddable custom elements, at a stable address."""
    return FileResponse(
        BUILT / "elements.js",
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"},
    )


class SecurityHeaders:
    """Adds the CSP and friends to every answer that does not set its own.

    Plain ASGI rather than ``BaseHTTPMiddleware``, which would buffer the job view's
    server-sent events.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(("/docs", "/redoc")):
            # Swagger UI loads its scripts from a CDN, inline: it keeps FastAPI's defaults.
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def mount(app: FastAPI) -> None:
    """Serve the dashboard from ``app``: its pages, its assets, its security headers."""
    app.include_router(router)
    app.mount("/assets", StaticFiles(directory=BUILT / "assets", check_dir=False), name="assets")
    app.add_middleware(SecurityHeaders)

"""After the demo: the dashboard on the demo's servers, with a fresh token, until Ctrl-C.

The API runs in this process (uvicorn, which handles Ctrl-C), so embedded servers stay
up while it serves and stop when it ends. It listens on loopback only; the token is
made for this run and printed once.
"""

from __future__ import annotations

import secrets
import socket

from pydantic import SecretStr
from rich.console import Console

from ailedger.settings import Settings

#: The demo's own price for its self-hosted CLIP model, so the image view shows a
#: cost: a GPU's hour spread over the images it embeds (about $0.00002 an image).
CLIP_PER_IMAGE_USD = "0.00002"
HOST = "127.0.0.1"


def free_port(preferred: int) -> int:
    """``preferred`` when nothing listens there, else any free port on loopback."""
    for port in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise OSError(f"no free port on {HOST}")


def serve_dashboard(settings: Settings, console: Console, *, token: str | None = None) -> None:
    """Serve the API and dashboard on ``settings``' servers until interrupted."""
    import uvicorn

    from ailedger.api.app import create_app

    token = token or secrets.token_urlsafe(24)
    port = free_port(settings.api_port)
    settings = settings.model_copy(
        update={"api_token": SecretStr(token), "api_host": HOST, "api_port": port}
    )
    url = f"http://{HOST}:{port}/"
    console.print()
    console.print(f"[bold]Dashboard:[/] {url}", markup=True, highlight=False)
    console.print(f"[bold]Token:[/]     {token}", highlight=False)
    console.print("Serving until Ctrl-C (run `ailedger demo --no-serve` to end here).")
    uvicorn.run(
        create_app(settings),
        host=HOST,
        port=port,
        log_config=None,
        log_level="warning",
        timeout_graceful_shutdown=3,
    )

"""After the demo: the dashboard on the demo's servers, with a fresh token, until Ctrl-C.

The API runs in this process (uvicorn, which handles Ctrl-C), so embedded servers stay
up while it serves and stop when it ends. It listens on loopback only; the token is
made for this run and printed once.
"""

from __future__ import annotations

import contextlib
import secrets
import socket

from pydantic import SecretStr
from rich.console import Console

from ailedger.settings import Settings

#: The demo's own price for its self-hosted CLIP model, so the image view shows a
#: cost: a GPU's hour spread over the images it embeds (about $0.00002 an image).
CLIP_PER_IMAGE_USD = "0.00002"
HOST = "127.0.0.1"


def listening_socket(preferred: int) -> socket.socket:
    """A socket listening on loopback: at ``preferred`` when it is free, else any free port.

    It listens before the URL is printed, so a browser opened at once is queued by the
    kernel until the server accepts, never refused.
    """
    for port in (preferred, 0):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            sock.close()
            continue
        sock.listen(128)
        return sock
    raise OSError(f"no free port on {HOST}")


def serve_dashboard(settings: Settings, console: Console, *, token: str | None = None) -> None:
    """Serve the API and dashboard on ``settings``' servers until interrupted."""
    import uvicorn

    from ailedger.api.app import create_app

    token = token or secrets.token_urlsafe(24)
    sock = listening_socket(settings.api_port)
    port = int(sock.getsockname()[1])
    settings = settings.model_copy(
        update={"api_token": SecretStr(token), "api_host": HOST, "api_port": port}
    )
    config = uvicorn.Config(
        create_app(settings),
        host=HOST,
        port=port,
        log_config=None,
        log_level="warning",
        timeout_graceful_shutdown=3,
    )
    url = f"http://{HOST}:{port}/"
    console.print()
    console.print(f"[bold]Dashboard:[/] {url}", markup=True, highlight=False)
    console.print(f"[bold]Token:[/]     {token}", highlight=False)
    console.print("Serving until Ctrl-C (run `ailedger demo --no-serve` to end here).")
    with sock, contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it ends, as uvicorn.run
        uvicorn.Server(config).run(sockets=[sock])

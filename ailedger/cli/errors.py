"""What a person reads when a command cannot do its work: one line of what and what to do.

Library errors that reach the command line (pydantic's, psycopg's, redis-py's) are
translated here into :class:`worker.errors.AILedgerError` s, so that ``ailedger``
prints a message and exits 2 (bad input) or 1 (server trouble), never a traceback.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping

import psycopg
import redis
from pydantic import ValidationError

from worker.errors import AILedgerError, InvalidInput, SchemaMissing, ServerUnavailable

#: Settings whose value is never repeated back: it may hold a password or a token.
_SECRET = re.compile(r"(url|token|password)$")
_MIGRATE = "run `ailedger migrate` with the same AILEDGER_DATABASE_URL first"


def settings_error(exc: ValidationError, flags: Mapping[str, str]) -> InvalidInput:
    """One line per bad setting, naming its flag (``flags``: field → flag) or variable."""
    problems: dict[str, list[str]] = {}
    values: dict[str, object] = {}
    lines = []
    for error in exc.errors(include_url=False):
        if not error["loc"]:  # about several settings at once: the message names them
            lines.append(error["msg"].removeprefix("Value error, "))
            continue
        field = str(error["loc"][0])
        where = ".".join(str(part) for part in error["loc"][1:])
        message = error["msg"].removeprefix("Value error, ")
        problems.setdefault(field, []).append(f"{where}: {message}" if where else message)
        values.setdefault(field, error["input"])
    for field, messages in problems.items():
        name = flags.get(field) or f"AILEDGER_{field.upper()}"
        shown = "" if _SECRET.search(field) else f"={_short(values[field])}"
        fix = "fix the flag" if field in flags else f"fix or unset {name}"
        lines.append(f"{name}{shown}: {'; '.join(messages)}; {fix}")
    return InvalidInput("\n".join(lines))


def translate(exc: BaseException) -> AILedgerError | None:
    """The error a person should read for ``exc``; None for a bug (its traceback is wanted)."""
    if isinstance(exc, AILedgerError):
        return exc
    if isinstance(exc, psycopg.errors.UndefinedTable):
        return SchemaMissing(f"the database lacks ailedger's tables ({_line(exc)}); {_MIGRATE}")
    if isinstance(exc, psycopg.OperationalError):
        text = _line(exc)
        if re.search(r'database "[^"]*" does not exist', text):
            return SchemaMissing(f"{_after_failed(text)}; {_MIGRATE} (it creates the database)")
        if re.search(r"password|authentication", text):
            return ServerUnavailable(
                f"Postgres refused the login: {_after_failed(text)}; check the user and "
                "password in AILEDGER_DATABASE_URL"
            )
        return ServerUnavailable(
            f"cannot reach Postgres: {_after_failed(text)}; check that it is running and "
            "that AILEDGER_DATABASE_URL (or --database-url) points at it"
        )
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return ServerUnavailable(
            f"Postgres refused: {_line(exc)}; connect as the role that ran `ailedger migrate`"
        )
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return ServerUnavailable(
            f"cannot reach Redis: {_line(exc)}; check that it is running and that "
            "AILEDGER_REDIS_URL (or --redis-url) points at it"
        )
    return None


def report(error: AILedgerError) -> None:
    """Print ``error`` on stderr: ``error: …``, one line per problem, no markup."""
    for line in str(error).splitlines() or [type(error).__name__]:
        sys.stderr.write(f"error: {line}\n")
    sys.stderr.flush()


def _line(exc: BaseException) -> str:
    """The first line of a library's message (libpq's hints and query excerpts follow it)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[0].split()).rstrip(".") if lines else type(exc).__name__


def _after_failed(text: str) -> str:
    # libpq: 'connection failed: connection to server at "h", port 1 failed: FATAL: …'
    return text.removeprefix("connection failed: ")


def _short(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."

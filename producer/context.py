"""The processing job the current code runs for, set once per job (e.g. a PDF upload)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from uuid import UUID

_job_id: ContextVar[str | None] = ContextVar("ailedger_job_id", default=None)


def current_job_id() -> str | None:
    """The job id set by :func:`job` or :func:`set_job` in this context, if any."""
    return _job_id.get()


def set_job(job_id: str | int | UUID | None) -> Token[str | None]:
    """Attach every call logged from this context on to ``job_id``; returns a reset token.

    ``job_id`` is the job's UUID or any key the service has for it (42, "upload-42"):
    workers store a key as its derived UUID with the key beside it (producer/jobs.py).
    """
    return _job_id.set(None if job_id is None else str(job_id))


def reset_job(token: Token[str | None]) -> None:
    _job_id.reset(token)


@contextmanager
def job(job_id: str | int | UUID) -> Iterator[str]:
    """``with producer.job(upload.id):`` — calls logged inside belong to that job."""
    token = set_job(job_id)
    try:
        yield str(job_id)
    finally:
        _job_id.reset(token)

"""The job the RQ baseline enqueues: it is never run, only queued."""

from __future__ import annotations

from typing import Any


def noop(fields: dict[str, Any]) -> None:
    """Stands in for a job that would store one AI call."""

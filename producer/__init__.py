"""ailedger producer: record AI calls from a service without slowing it down.

    import producer

    producer.log_call(task="material_classification", model="claude-3-5-haiku-20241022",
                      input_tokens=812, output_tokens=64, latency_ms=930,
                      confidence_breakdown={"model_confidence": 0.91, "completeness": 1.0})

    with producer.job(upload.id):            # every call inside belongs to this PDF job
        with producer.track("product_enrichment_stage2", "claude-3-5-sonnet-20241022") as call:
            response = client.messages.create(...)
            call.record(response=response)   # tokens, model, provider from the SDK object

``log_call`` returns at once and never raises; a background thread sends events to
Redis. Configure the default logger with ``AILEDGER_REDIS_URL`` / ``AILEDGER_STREAM``
or :func:`configure`.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from producer.constants import DEFAULT_STREAM
from producer.context import current_job_id, job, reset_job, set_job
from producer.logger import AICallLogger, ProducerStats
from producer.track import TrackedCall, track

__all__ = [
    "AICallLogger",
    "ProducerStats",
    "TrackedCall",
    "configure",
    "current_job_id",
    "default_logger",
    "job",
    "log_call",
    "reset_job",
    "set_job",
    "track",
]

_default: AICallLogger | None = None
_default_lock = threading.Lock()


def configure(
    redis_url: str | None = None, *, stream: str | None = None, **options: Any
) -> AICallLogger:
    """Replace the default logger used by :func:`log_call` and :func:`track`."""
    global _default
    logger = AICallLogger(
        redis_url,
        stream=stream or os.environ.get("AILEDGER_STREAM", DEFAULT_STREAM),
        **options,
    )
    with _default_lock:
        previous, _default = _default, logger
    if previous is not None:
        previous.close()
    return logger


def default_logger() -> AICallLogger:
    """The process-wide logger, built from the environment on first use."""
    logger = _default
    if logger is None:
        with _default_lock:
            if _default is None:
                globals()["_default"] = AICallLogger(
                    stream=os.environ.get("AILEDGER_STREAM", DEFAULT_STREAM)
                )
            logger = _default
    assert logger is not None
    return logger


def log_call(**fields: Any) -> str:
    """Record one AI call on the default logger; returns its id. Never raises, never blocks."""
    logger = _default
    if logger is None:
        try:
            logger = default_logger()
        except Exception:
            return ""
    return logger.log(**fields)

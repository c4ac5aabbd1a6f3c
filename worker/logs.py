"""structlog set-up: key-value lines on a terminal, JSON lines in production."""

from __future__ import annotations

import logging
import os
import sys

import structlog


def configure_logging(*, json: bool | None = None, level: str | None = None) -> None:
    """JSON lines unless stderr is a terminal (AILEDGER_LOG_JSON=1/0 forces); AILEDGER_LOG_LEVEL."""
    if json is None:
        env = os.environ.get("AILEDGER_LOG_JSON")
        json = env == "1" if env is not None else not sys.stderr.isatty()
    level_name = (level or os.environ.get("AILEDGER_LOG_LEVEL", "INFO")).upper()
    numeric = logging.getLevelNamesMapping().get(level_name, logging.INFO)
    logging.basicConfig(level=numeric, format="%(message)s", stream=sys.stderr)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )

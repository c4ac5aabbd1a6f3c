"""structlog set-up: key-value lines on a terminal, JSON lines in production.

Every line goes through one handler on the root logger, so what the standard
library logs — the producer, psycopg, RQ, uvicorn — comes out in the same format
as ailedger's own structlog events: in JSON mode, every line is one JSON object.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

#: Libraries whose own handlers would print a second, differently formatted line.
_LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "rq.worker", "rq")


def configure_logging(*, json: bool | None = None, level: str | None = None) -> None:
    """JSON lines unless stderr is a terminal (AILEDGER_LOG_JSON=1/0 forces); AILEDGER_LOG_LEVEL."""
    if json is None:
        env = os.environ.get("AILEDGER_LOG_JSON")
        json = env == "1" if env is not None else not sys.stderr.isatty()
    level_name = (level or os.environ.get("AILEDGER_LOG_LEVEL", "INFO")).upper()
    numeric = logging.getLevelNamesMapping().get(level_name, logging.INFO)
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *([structlog.processors.format_exc_info] if json else []),
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
    for name in _LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers = []
        library.propagate = True
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )

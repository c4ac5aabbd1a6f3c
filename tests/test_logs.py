"""Logs as an operator reads them: in JSON mode every line is one JSON object."""

from __future__ import annotations

import subprocess
import sys

import orjson

from producer import AICallLogger
from tests.faults import run_ailedger

MIXED = """
import logging, structlog
from worker.logs import configure_logging
configure_logging(json=True, level="INFO")
logging.getLogger("psycopg.pool").warning("connection %s lost", "c1")
logging.getLogger("ailedger.producer").warning("spool in %s is full", "/tmp/x")
structlog.get_logger("ailedger.worker").info("worker started", stream="s1")
try:
    1 / 0
except ZeroDivisionError:
    structlog.get_logger("ailedger.worker").exception("worker iteration failed")
"""


def json_lines(text: str) -> list[dict[str, object]]:
    lines = [line for line in text.splitlines() if line.strip()]
    return [orjson.loads(line) for line in lines]  # raises on any line that is not JSON


def test_library_and_ailedger_lines_are_all_json() -> None:
    result = subprocess.run(
        [sys.executable, "-c", MIXED], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    found = json_lines(result.stderr)
    by_event = {str(line["event"]): line for line in found}
    assert by_event["connection c1 lost"]["logger"] == "psycopg.pool"
    assert by_event["spool in /tmp/x is full"]["level"] == "warning"
    assert by_event["worker started"]["stream"] == "s1"
    assert "ZeroDivisionError" in str(by_event["worker iteration failed"]["exception"])
    assert all("timestamp" in line for line in found)


def test_a_worker_run_logs_only_json_lines(settings, db) -> None:
    logger = AICallLogger(settings.redis_url, stream=settings.stream)
    logger.log(task="t", model="gpt-4o", input_tokens=3)
    assert logger.flush(5)
    logger.close()
    result = run_ailedger(settings, "worker", "--burst", AILEDGER_LOG_JSON="1")
    assert result.returncode == 0, result.stderr[-2000:]
    found = json_lines(result.stderr)
    started = [line for line in found if line["event"] == "worker started"]
    assert started and started[0]["stream"] == settings.stream

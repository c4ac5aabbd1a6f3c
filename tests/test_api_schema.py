"""The API against its own OpenAPI document: schemathesis, every check, NUL bytes allowed.

``ailedger serve`` runs as an operator runs it, on a database seeded through the real
pipeline (jobs named by UUIDs and keys, images with slashes, unpriced and failed calls).
schemathesis generates valid and invalid requests from ``/openapi.json`` and checks that
none gets a 5xx, every status and body is the one documented, auth is enforced, and
invalid input is refused.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from ailedger.demo.traffic import generate_jobs
from producer import AICallLogger
from tests.faults import cli_env, free_port, wait_for

TOKEN = "schema-token"
# A schema cannot say that `from` comes before `to`, nor that a range holds at most
# 5000 timeline buckets: those requests are schema-valid and get a documented 422 with
# its reason. Every other check runs as schemathesis ships it.
CONFIG = """
[checks.positive_data_acceptance]
# 400: an OTLP body its schema cannot describe (protobuf) that fails to parse, as the
# OTLP/HTTP specification has it.
expected-statuses = ["2xx", "400", "401", "422"]
"""


@pytest.fixture
def served(settings: Any, run_burst: Any, tmp_path: Path) -> Iterator[str]:
    """The base URL of ``ailedger serve`` on a seeded database."""
    logger = AICallLogger(settings.redis_url, stream=settings.stream)
    start = datetime.now(UTC).replace(microsecond=0)
    for event in generate_jobs(random.Random(11), 300, start=start, jobs_per_hour=4):
        logger.log(**event)
    logger.log(task="ocr", model="gpt-4o-mini", input_tokens=10, job_id=42, image_id="a/b.png")
    logger.log(task="ocr", model="clip-vit-base-patch32", job_id="upload-42", image_id=7)
    assert logger.flush(30)
    logger.close()
    run_burst()
    port = free_port()
    # To a file, not a pipe: nobody reads a pipe while schemathesis runs, and a full one
    # would stop the server mid-request.
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ailedger.cli", "serve", "--port", str(port)],
        env={**cli_env(settings), "AILEDGER_API_TOKEN": TOKEN, "AILEDGER_INGEST_TOKENS": TOKEN},
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(answers, timeout=30, what="ailedger serve answering /healthz")
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.timeout(900)
def test_schemathesis_finds_no_failure_with_every_check(served: str, tmp_path: Path) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st is not None, "schemathesis is in the dev extra: pip install -e '.[dev]'"
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    result = subprocess.run(
        [
            st, "--config-file", str(config), "run", f"{served}/openapi.json",
            "--checks", "all",
            "--header", f"Authorization: Bearer {TOKEN}",
            "--generation-allow-x00", "true",
            "--max-examples", "25",
            # A live job stream stays open for minutes by design; its snapshot twin,
            # /api/jobs/{job_id}/calls, answers the same data and is checked.
            "--exclude-path-regex", "/events$",
            "--seed", "20250601",
            "--generation-database", "none",
            "--report-dir", str(tmp_path),
            "--no-color",
        ],
        cwd=tmp_path,  # schemathesis keeps its state in .schemathesis/ of the cwd
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "12 selected / 13 total" in result.stdout, result.stdout

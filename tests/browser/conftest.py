"""The dashboard in a real browser: Debian's Chromium driven by Playwright, on `ailedger serve`.

Skipped only when /usr/bin/chromium is missing (``apt-get install chromium``); Playwright's
own browser downloads are never used.
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ailedger.demo.traffic import generate_jobs
from producer import AICallLogger
from tests.faults import cli_env, free_port, wait_for

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "dashboard-test-token"
XSS = "<img src=x onerror=alert(1)>"
IMAGE_ID = "catalog/2025/chair-0042.png"
UNPRICED_MODEL = "in-house-vision-2"
LAPTOP = {"width": 1366, "height": 800}
PHONE = {"width": 390, "height": 844}

if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install -y chromium) "
        "to run the dashboard's browser tests",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402


@dataclass(frozen=True)
class Served:
    url: str
    token: str

    def api(self, path: str, **params: Any) -> Any:
        response = httpx.get(
            self.url + path,
            params=params,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()


def seed_events(now: datetime) -> list[dict[str, Any]]:
    """A day of realistic traffic ending a few minutes ago, plus the cases a page must handle."""
    start = now - timedelta(hours=20)
    events = [
        e
        for e in generate_jobs(random.Random(11), 1_200, start=start, jobs_per_hour=0.4)
        if e["timestamp"] < now - timedelta(minutes=2)
    ]
    recent = now - timedelta(minutes=30)
    extra_job = "7d5c9a1e-0000-4000-8000-000000000042"
    events += [
        {  # text from the data that must stay text
            "timestamp": recent,
            "job_id": extra_job,
            "task": XSS,
            "model": "claude-3-5-haiku-20241022",
            "provider": "anthropic",
            "input_tokens": 900,
            "output_tokens": 120,
            "latency_ms": 640,
            "confidence_breakdown": {"model_confidence": 0.4},
            "error_message": XSS,
        },
        {  # a model without a price: "—", never $0
            "timestamp": recent + timedelta(seconds=1),
            "job_id": extra_job,
            "task": "image_analysis",
            "model": UNPRICED_MODEL,
            "provider": "acme",
            "input_tokens": 1_500,
            "output_tokens": 300,
            "latency_ms": 2_100,
            "image_id": IMAGE_ID,
            "confidence_breakdown": {"model_confidence": 0.9, "completeness": 0.8},
        },
        {
            "timestamp": recent + timedelta(seconds=3),
            "job_id": extra_job,
            "task": "image_embedding",
            "model": "text-embedding-3-small",
            "provider": "openai",
            "input_tokens": 37,
            "output_tokens": 0,
            "latency_ms": 80,
            "image_id": IMAGE_ID,
        },
        {
            "timestamp": recent + timedelta(seconds=4),
            "job_id": extra_job,
            "task": "image_validation",
            "model": "claude-3-5-sonnet-20241022",
            "provider": "anthropic",
            "input_tokens": 2_400,
            "output_tokens": 350,
            "latency_ms": 3_400,
            "image_id": IMAGE_ID,
            "confidence_breakdown": {"model_confidence": 0.72, "validation": 0.66},
        },
    ]
    return events


def log_events(settings: Any, events: list[dict[str, Any]]) -> None:
    logger = AICallLogger(settings.redis_url, stream=settings.stream)
    for event in events:
        logger.log(**event)
    assert logger.flush(30)
    logger.close()


@pytest.fixture
def seeded(settings: Any, run_burst: Any) -> list[dict[str, Any]]:
    events = seed_events(datetime.now(UTC))
    log_events(settings, events)
    run_burst()
    return events


@pytest.fixture
def served(settings: Any) -> Iterator[Served]:
    """`ailedger serve` on a free port, on the test's database and stream, with a token."""
    port = free_port()
    env = {**cli_env(settings), "AILEDGER_API_TOKEN": TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ailedger.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "serve exited"
        try:
            return httpx.get(url + "/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(answers, timeout=30, what="ailedger serve answering")
        yield Served(url, TOKEN)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=LAPTOP, accept_downloads=True)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.dialogs = dialogs  # type: ignore[attr-defined]
    yield page
    context.close()


def sign_in(page: Page, served: Served, path: str = "/") -> None:
    page.goto(served.url + path)
    page.get_by_label("API token").fill(served.token)
    page.get_by_role("button", name="Sign in").click()
    page.locator("nav.topbar").wait_for()

"""`ailedger demo` ends by serving the dashboard with a fresh token until Ctrl-C, and
prices its CLIP model per image; without a terminal (CI, pipes) it ends on its own."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
import psycopg

from ailedger.demo.serving import CLIP_PER_IMAGE_USD
from ailedger.demo.traffic import CLIP
from tests.faults import cli_env, free_port, run_ailedger, wait_for


def test_demo_serves_the_dashboard_until_ctrl_c(settings: Any, database_url: str) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ailedger.cli", "demo", "-n", "300", "-p", "1", "--serve"],
        env={**cli_env(settings), "AILEDGER_API_PORT": str(port), "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))  # type: ignore[union-attr]
    reader.start()
    try:
        printed = wait_for(
            lambda: "Token:" in "".join(lines) and "".join(lines), timeout=120, what="the token"
        )
        url = re.search(r"Dashboard:\s+(\S+)", printed)
        token = re.search(r"Token:\s+(\S+)", printed)
        assert url and token, printed
        assert url.group(1) == f"http://127.0.0.1:{port}/"
        base = url.group(1).rstrip("/")
        assert httpx.get(base + "/", timeout=5).status_code == 200  # the page
        assert httpx.get(base + "/api/admin/budgets", timeout=5).status_code == 401
        auth = {"Authorization": f"Bearer {token.group(1)}"}
        with psycopg.connect(database_url) as conn:
            image_id, calls = conn.execute(
                "SELECT image_id, count(*) FROM ai_call_logs WHERE model = %s"
                " AND error_message IS NULL GROUP BY 1 ORDER BY 2 DESC LIMIT 1",
                (CLIP,),
            ).fetchone()  # type: ignore[misc]
        answer = httpx.get(
            f"{base}/api/admin/images/{quote(image_id, safe='')}/ai-costs", headers=auth, timeout=5
        ).json()
        clip = next(s for s in answer["steps"] if CLIP in s["models"])
        assert clip["unpriced_calls"] == 0  # a CLIP cost, not "—"
        assert Decimal(clip["cost"]) == Decimal(CLIP_PER_IMAGE_USD) * calls
        assert proc.poll() is None  # still serving
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        reader.join(10)


def test_demo_without_a_terminal_ends_with_its_summary(settings: Any) -> None:
    done = run_ailedger(settings, "demo", "-n", "100", "-p", "1", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Cost by model" in done.stdout
    assert "Token:" not in done.stdout

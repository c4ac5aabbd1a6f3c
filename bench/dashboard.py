"""The dashboard's overview on a big table: its data calls alone, and the page in a browser.

    .venv/bin/python -m bench.dashboard                       # 10 million rows (~15-30 min)
    .venv/bin/python -m bench.dashboard --rows 200000 --loads 5 --requests 20
    .venv/bin/python -m bench.dashboard --database 'dbname=… host=…'   # a kept database

Rows are generated as in ``bench.metrics_api`` (30 days of the platform's traffic inside
Postgres, then every rollup by one statement). ``ailedger serve``'s app runs on loopback;
first the overview's data calls as the page makes them for its default range (the last
24 h: ``ai-metrics``, ``confidence``, ``jobs-summary``; plus ``jobs`` for the Jobs page),
timed with httpx; then the overview loaded ``--loads`` times in Chromium
(/usr/bin/chromium, driven by Playwright): "complete" is the page's ``data-ready``
attribute (every fetch answered and rendered) with the cost chart drawn. Also reported:
the built bundle's gzipped size.
"""

from __future__ import annotations

import argparse
import gzip
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import uvicorn
from psycopg.conninfo import conninfo_to_dict
from pydantic import SecretStr

from ailedger.api.app import create_app
from ailedger.api.dashboard import BUILT
from ailedger.settings import Settings
from bench.env import bench_env, machine_facts, server_args
from bench.metrics_api import TOKEN, _free_port, build_rollups, generate, percentiles

CHROMIUM = "/usr/bin/chromium"
READY = '[data-view="overview"][data-ready] [data-chart="cost"] canvas'


def bundle_sizes() -> dict[str, int]:
    """Bytes of each built asset, gzipped (level 9), and their total."""
    sizes = {
        str(p.relative_to(BUILT)): len(gzip.compress(p.read_bytes(), 9))
        for p in sorted(BUILT.rglob("*"))
        if p.is_file() and p.suffix in (".js", ".css", ".html")
    }
    sizes["total (page: index.html, app.js, index.css)"] = sum(
        v for k, v in sizes.items() if k != "elements.js"
    )
    return sizes


class Served:
    """The API and dashboard on a free loopback port, in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings), host="127.0.0.1", port=self.port, log_level="warning"
            )
        )
        self.thread = threading.Thread(target=self.server.run, name="bench-serve", daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def overview_calls(end: datetime) -> dict[str, tuple[str, dict[str, str]]]:
    """The requests the overview makes for its default range (24 h ending now), and Jobs'."""
    span = {"from": (end - timedelta(days=1)).isoformat(), "to": end.isoformat()}
    return {
        "ai-metrics, 24 h": ("/api/admin/ai-metrics", span),
        "confidence, 24 h": ("/api/admin/confidence", span),
        "jobs-summary, 24 h": ("/api/admin/jobs-summary", span),
        "jobs (Jobs page), 24 h": ("/api/admin/jobs", span),
        "jobs (Jobs page), 30 days by cost": (
            "/api/admin/jobs",
            {"from": (end - timedelta(days=30)).isoformat(), "to": end.isoformat(), "sort": "cost"},
        ),
    }


def measure_calls(url: str, end: datetime, requests: int) -> dict[str, dict[str, float]]:
    """p50/p95/p99 ms of each data call over HTTP, after ten warm-up requests."""
    results: dict[str, dict[str, float]] = {}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        for name, (path, params) in overview_calls(end).items():
            timings = []
            for n in range(requests + 10):
                began = time.perf_counter()
                response = client.get(path, params=params, timeout=30)
                elapsed = (time.perf_counter() - began) * 1000
                assert response.status_code == 200, response.text[:500]
                if n >= 10:
                    timings.append(elapsed)
            results[name] = percentiles(timings)
    return results


def measure_page(url: str, loads: int) -> dict[str, float]:
    """ms from navigation to a complete overview, over ``loads`` fresh loads (after one warm-up)."""
    from playwright.sync_api import sync_playwright

    timings: list[float] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        try:
            for n in range(loads + 1):
                context = browser.new_context(viewport={"width": 1366, "height": 800})
                context.add_init_script(f"sessionStorage.setItem('ailedger.token', {TOKEN!r})")
                page = context.new_page()
                began = time.perf_counter()
                page.goto(url + "/")
                page.locator(READY).wait_for(timeout=30_000)
                elapsed = (time.perf_counter() - began) * 1000
                if n > 0:  # the first load fills the server's caches and Chromium's disk cache
                    timings.append(elapsed)
                context.close()
        finally:
            browser.close()
    return {**percentiles(timings), "max": round(max(timings), 1), "loads": len(timings)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--requests", type=int, default=100, help="timed requests per call")
    parser.add_argument("--loads", type=int, default=20, help="timed page loads")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--database", help="measure a database kept by an earlier run")
    parser.add_argument("--json", help="write every figure here")
    server_args(parser)
    args = parser.parse_args(argv)

    def say(line: str) -> None:
        print(line, flush=True)

    os.environ["AILEDGER_LOG_LEVEL"] = "WARNING"
    with bench_env(args.redis_url, args.postgres_url) as env:
        report: dict[str, Any] = {"machine": machine_facts(env), "bundle_gzip": bundle_sizes()}
        if args.database:
            url = args.database
        else:
            url = env.fresh_database()
            end = datetime.now(UTC).replace(second=0, microsecond=0)
            say(f"generating {args.rows:,} rows over {args.days} days")
            generate(url, args.rows, end - timedelta(days=args.days), args.days, say)
            say("computing the rollups from the raw rows")
            report["rollup_build_s"] = round(build_rollups(url), 1)
        with psycopg.connect(url) as conn:
            rows, newest = conn.execute(
                "SELECT count(*), max(timestamp) FROM ai_call_logs"
            ).fetchone()  # type: ignore[misc]
            report["rows"] = rows
            report["job_rollup_rows"] = conn.execute(
                "SELECT count(*) FROM ai_job_rollups"
            ).fetchone()[0]  # type: ignore[index]
        settings = Settings(
            database_url=url,
            redis_url=args.redis_url,
            stream=env.key("events"),
            api_token=SecretStr(TOKEN),
        )
        # The page asks for "the last 24 h" from the browser's clock: the data must end now.
        if newest < datetime.now(UTC) - timedelta(hours=1):
            say(f"note: the newest row is from {newest:%Y-%m-%d %H:%M}; the last 24 h hold less")
        with Served(settings) as served:
            end = datetime.now(UTC)
            say(f"data calls: {args.requests} timed requests each")
            report["api_ms"] = measure_calls(served.url, end, args.requests)
            say(f"the overview in Chromium: {args.loads} timed loads")
            report["page_complete_ms"] = measure_page(served.url, args.loads)
        if args.keep and not args.database:
            env._databases.remove(conninfo_to_dict(url)["dbname"])
            say(f"kept {url}")
    say(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

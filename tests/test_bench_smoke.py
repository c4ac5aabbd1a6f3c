"""The bench runs end to end in its quick mode and leaves nothing behind (no timing asserted)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import orjson
import psycopg
import pytest
import redis

from tests.conftest import Servers

ROOT = Path(__file__).resolve().parent.parent


def run_bench(servers: Servers, module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m <module> <args>`` against the test servers, from the checkout."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            module,
            *args,
            "--redis-url",
            servers.redis_url,
            "--postgres-url",
            servers.admin_url,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_quick_bench_measures_everything_and_cleans_up(servers: Servers, tmp_path: Path) -> None:
    run_id = f"smoke{uuid.uuid4().hex[:8]}"
    report = tmp_path / "bench.json"
    done = run_bench(servers, "bench", "--quick", "--run-id", run_id, "--json", str(report))
    for title in ("Caller cost per call", "Stream → Postgres", "time by stage"):
        assert title in done.stdout

    figures = orjson.loads(report.read_bytes())
    assert figures["problems"] == []
    caller = {row["name"]: row for row in figures["caller"]}
    assert {"log(), sender sending", "RQ enqueue per event"} <= set(caller)
    assert any(name.startswith("sync INSERT") for name in caller)
    assert all(row["p50_us"] > 0 for row in caller.values() if row["name"] != "sender capacity")
    assert caller["sender capacity"]["all_sent"] is True
    assert caller["log(), sender sending"]["all_sent"] is True
    runs = figures["throughput"]
    assert [row["processes"] for row in runs if row["processes"]] == [1, 2]
    # The plumbing floor ran as 1 and 2 processes, beside the workers, and stored every event.
    assert [row["floor_processes"] for row in runs if row.get("floor_processes")] == [1, 2]
    assert "Plumbing floor" in done.stdout
    assert all(row["stored"] == row["events"] == 5_000 for row in runs)
    assert figures["profile"]["stored"] == figures["profile"]["events"]
    assert figures["machine"]["nproc"] >= 1

    # Its databases, keys and spool are gone; nothing it spooled reached the shared spool.
    temp = Path(tempfile.gettempdir())
    assert list(temp.glob(f"ailedger-bench-{run_id}-*")) == []
    shared = temp / f"ailedger-spool-{os.getuid()}"
    for segment in shared.glob("*.seg") if shared.is_dir() else ():
        assert run_id.encode() not in segment.read_bytes()[:300]
    with psycopg.connect(servers.admin_url, autocommit=True) as conn:
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"%{run_id}%",)
        ).fetchall()
    assert left == []
    client = redis.Redis.from_url(servers.redis_url)
    try:
        assert list(client.scan_iter(match=f"*{run_id}*", count=1000)) == []
    finally:
        client.close()


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_instruction_counts_measure_a_step(servers: Servers) -> None:
    """bench.instructions counts a step under callgrind (small sizes: it proves it runs)."""
    done = run_bench(
        servers, "bench.instructions", "--steps", "read", "--events", "200", "--batches", "1"
    )
    counts = {
        cells[1].strip(): int(cells[2].strip().replace(",", ""))
        for line in done.stdout.splitlines()
        if (cells := line.split("│"))[1:2] and cells[1].strip() == "read"
    }
    # Reading one entry costs thousands of instructions (8k measured): far fewer means the
    # difference of the two runs missed the batches, far more that their set-ups differed.
    assert 1_000 < counts["read"] < 100_000


def test_copy_formats_compares_text_and_binary(servers: Servers) -> None:
    """bench.copy_formats stores the rows both ways and prints binary over text (small sizes)."""
    run_id = f"formats{uuid.uuid4().hex[:8]}"
    # It exits non-zero when either COPY stored fewer rows than it was given.
    done = run_bench(
        servers, "bench.copy_formats", "--rows", "300", "--repeat", "1", "--run-id", run_id
    )
    cells = next(
        [c.strip() for c in line.split("│")[1:-1]]
        for line in done.stdout.splitlines()
        if line.split("│")[1:2] and line.split("│")[1].strip() == "1"
    )
    rate, rate_ratio = float(cells[1].replace(",", "")), float(cells[2])
    assert rate > 0 and rate_ratio > 0
    with psycopg.connect(servers.admin_url, autocommit=True) as conn:
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"%{run_id}%",)
        ).fetchall()
    assert left == []  # its databases are dropped

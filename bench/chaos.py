"""``python -m bench.chaos``: a long kill-and-restart campaign, counting what was lost or doubled.

Realistic platform traffic is written to a stream at a steady rate while N
``ailedger worker`` processes consume it; every few seconds one of them is
SIGKILLed while it holds a batch it has not acknowledged, and started again at
once under a new consumer name. When every event has been fed and the group is
drained, the table is compared with what was sent, id by id:

    lost        sent, and not a row
    duplicated  a row more than once, or a row nobody sent

The run uses its own database and stream keys on the given servers (see
bench/env.py) and removes them at the end. Exit code 1 if anything was lost or
duplicated, or if anything is left pending.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from bench.env import DEFAULT_REDIS_URL, bench_env, default_postgres_url, machine_facts
from tests.faults import (
    group_state,
    kill_and_restart,
    realistic_payloads,
    table_counts,
    worker_pool,
)

GROUP = "ailedger"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos",
        description="SIGKILL workers mid-batch for a while; prove nothing is lost or doubled.",
    )
    parser.add_argument("--events", type=int, default=300_000, help="events to send")
    parser.add_argument("--workers", type=int, default=3, help="worker processes")
    parser.add_argument(
        "--duration", type=float, default=90.0, help="seconds over which the events are sent"
    )
    parser.add_argument(
        "--kill-every",
        default="1.5,3",
        help="seconds between kills: MIN,MAX (each interval drawn at random)",
    )
    parser.add_argument(
        "--claim-idle-ms", type=int, default=2_000, help="AILEDGER_CLAIM_IDLE_MS for the workers"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--redis-url", default=os.environ.get("AILEDGER_REDIS_URL", DEFAULT_REDIS_URL)
    )
    parser.add_argument(
        "--postgres-url",
        default=default_postgres_url(),
        help="any database on the server; the campaign creates and drops its own beside it",
    )
    return parser.parse_args(argv)


def lost_and_duplicated(database_url: str, sent: set[str]) -> tuple[int, int, int]:
    """(rows, lost, duplicated), comparing the table with the ids sent."""
    counts = table_counts(database_url)
    with psycopg.connect(database_url) as conn:
        stored = {str(row[0]) for row in conn.execute("SELECT id FROM ai_call_logs")}
    lost = len(sent - stored)
    duplicated = (counts.rows - counts.distinct_ids) + len(stored - sent)
    return counts.rows, lost, duplicated


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    low, _, high = args.kill_every.partition(",")
    kill_every = (float(low), float(high or low))
    command = "python -m bench.chaos " + shlex.join(sys.argv[1:] if argv is None else argv)
    print(f"encoding {args.events:,} events …", flush=True)
    sent = dict(realistic_payloads(args.events, seed=args.seed))

    with bench_env(args.redis_url, args.postgres_url) as env:
        facts = machine_facts(env)
        database_url = env.fresh_database()
        stream = env.key("chaos:events")
        client = env.redis()
        logs = Path(tempfile.mkdtemp(prefix="ailedger-chaos-"))
        print(
            f"{args.workers} workers, one SIGKILLed every {kill_every[0]:g} to {kill_every[1]:g} s,"
            f" {args.events:,} events sent over {args.duration:g} s",
            flush=True,
        )
        with worker_pool(
            args.workers,
            redis_url=args.redis_url,
            database_url=database_url,
            stream=stream,
            log_dir=logs,
            extra_env={"AILEDGER_CLAIM_IDLE_MS": str(args.claim_idle_ms)},
        ) as workers:
            campaign = kill_and_restart(
                workers,
                redis_url=args.redis_url,
                stream=stream,
                group=GROUP,
                payloads=list(sent.values()),
                feed_seconds=args.duration,
                kill_every=kill_every,
                rng=random.Random(args.seed),
                timeout=args.duration + 600,
            )
            settle = time.monotonic() + 30
            while client.xlen(stream) and time.monotonic() < settle:
                time.sleep(0.1)  # housekeeping trims what was acknowledged
            final_length = client.xlen(stream)
        state = group_state(client, stream, GROUP)
        rows, lost, duplicated = lost_and_duplicated(database_url, set(sent))
        rejects = table_counts(database_url).rejects
        client.close()

    pending = state.pending if state else -1
    lag = state.lag if state else -1
    print(
        f"""
command          {command}
machine          {facts["nproc"]} cores ({facts["cpu"]}), {facts["ram_gib"]} GiB RAM
software         Python {facts["python"]}, Postgres {facts["postgres"]}, Redis {facts["redis"]}
load average     {facts["load_avg"]} when the run began
events sent      {args.events:,}
workers          {args.workers}
kills            {campaign.kills} SIGKILLs, {campaign.mid_batch_kills} of them mid-batch
orphaned         {campaign.orphaned:,} entries left pending by killed workers, claimed by others
duration         {campaign.seconds:.1f} s
rows             {rows:,}
dead-lettered    {rejects:,}
pending          {pending:,}    lag {lag:,}
stream length    peak {campaign.peak_length:,}, at the end {final_length:,}

lost = {lost}, duplicated = {duplicated}"""
    )
    if lost == duplicated == rejects == pending == lag == 0:
        shutil.rmtree(logs, ignore_errors=True)
        return 0
    print(f"worker logs kept in {logs}")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())

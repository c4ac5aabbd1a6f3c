"""``python -m bench``: every measurement in one run, printed as tables (see bench/README.md)."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from bench.caller import BUSY, SENDER_CAPACITY, measure_burst, run_caller
from bench.env import DEFAULT_REDIS_URL, bench_env, default_postgres_url, machine_facts
from bench.events import logged_fields, stream_payloads
from bench.lag import run_lag
from bench.profile import run_profile
from bench.report import median_results, print_report, wide_console
from bench.throughput import prepare_rows, run_throughput

#: Sizes for a full run and for ``--quick`` (a smoke run of the same code, figures meaningless).
FULL = {
    "events": 200_000,
    "log_events": 50_000,
    "baseline_events": 5_000,
    "profile_events": 50_000,
}
PARTS = ("caller", "bursts", "throughput", "lag", "profile")
QUICK = {"events": 5_000, "log_events": 2_000, "baseline_events": 200, "profile_events": 5_000}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure ailedger: caller cost of log() and stream → Postgres throughput.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: proves it runs")
    parser.add_argument("--events", type=int, help="events for the throughput runs")
    parser.add_argument("--log-events", type=int, help="log() calls timed per measurement")
    parser.add_argument("--baseline-events", type=int, help="INSERT / RQ calls timed")
    parser.add_argument("--profile-events", type=int, help="events for the profile (0: skip)")
    parser.add_argument("--rate", type=float, default=10_000, help="log() calls/s (paced)")
    parser.add_argument("--processes", default="1,2", help="worker process counts, comma-separated")
    parser.add_argument("--batch-size", type=int, default=2000, help="worker batch size")
    parser.add_argument("--repeat", type=int, default=1, help="runs; figures are medians")
    parser.add_argument(
        "--only",
        type=lambda text: [part.strip() for part in text.split(",")],
        action="extend",
        help="parts to run, comma-separated: caller, bursts, throughput, lag, profile",
    )
    parser.add_argument("--lag-rate", type=float, default=5_000, help="events/s for the lag run")
    parser.add_argument("--lag-seconds", type=float, default=60, help="length of the lag run")
    parser.add_argument("--burst-events", type=int, help="events of the burst (4 threads)")
    parser.add_argument("--no-sampler", action="store_true", help="skip the pyinstrument run")
    parser.add_argument("--profile-out", type=Path, help="write the pyinstrument tree here")
    parser.add_argument("--json", type=Path, help="write every figure here as JSON")
    parser.add_argument(
        "--redis-url", default=os.environ.get("AILEDGER_REDIS_URL", DEFAULT_REDIS_URL)
    )
    parser.add_argument(
        "--postgres-url",
        default=default_postgres_url(),
        help="any database on the server; the bench creates and drops its own beside it",
    )
    parser.add_argument("--run-id", help="names this run's databases and keys (default: random)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    for name, value in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.processes = [int(p) for p in str(args.processes).split(",") if p.strip()]
    args.only = set(args.only or PARTS)
    if unknown := args.only - set(PARTS):
        parser.error(f"--only: unknown part(s) {', '.join(sorted(unknown))}; choose from {PARTS}")
    if args.quick:
        args.lag_seconds = min(args.lag_seconds, 5)
    if args.burst_events is None:
        args.burst_events = 20_000 if args.quick else 1_000_000
    return args


def _quiet_logs() -> None:
    # Workers (in this process for the profile, children for the throughput runs)
    # log every start and stop; the tables are the output here.
    os.environ["AILEDGER_LOG_LEVEL"] = "WARNING"
    from worker.logs import configure_logging

    configure_logging(level="WARNING")


def _exit_on_sigterm() -> None:
    # `timeout` and CI runners stop with SIGTERM: exit through the `finally` blocks, so
    # the run's databases, keys and spool folder are removed as on any other failure.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _exit_on_sigterm()
    _quiet_logs()
    console = wide_console()
    status = Console(stderr=True)
    command = "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    began = time.perf_counter()
    caller_runs: list[list[dict[str, Any]]] = []
    throughput_runs: list[list[dict[str, Any]]] = []
    profile: dict[str, Any] | None = None
    bursts: list[dict[str, Any]] = []
    lag: dict[str, Any] | None = None
    with bench_env(args.redis_url, args.postgres_url, args.run_id) as env:
        machine = machine_facts(env)
        # Any producer the bench makes spools into the run's own folder, never the shared one.
        os.environ["AILEDGER_SPOOL_DIR"] = str(env.spool_dir())
        status.print(f"bench run {env.run_id}: preparing events…")
        fields = logged_fields(5_000)
        needed = max(args.events, args.profile_events)
        payloads = stream_payloads(needed) if {"throughput", "profile"} & args.only else []
        rows: list[Any] = []
        if "throughput" in args.only:
            url = env.fresh_database()
            try:
                rows = prepare_rows(url, payloads[: args.events])
            finally:
                env.drop_database(url)
        for run in range(1, args.repeat + 1):
            if "caller" in args.only:
                status.print(f"run {run}/{args.repeat}: caller cost…")
                caller_runs.append(
                    run_caller(
                        env,
                        fields,
                        log_events=args.log_events,
                        baseline_events=args.baseline_events,
                        rate=args.rate,
                    )
                )
            if "throughput" in args.only:
                status.print(f"run {run}/{args.repeat}: COPY ceiling and workers…")
                throughput_runs.append(
                    run_throughput(
                        env,
                        payloads[: args.events],
                        rows,
                        processes=args.processes,
                        batch_size=args.batch_size,
                    )
                )
        if "bursts" in args.only:
            status.print(f"a burst of {args.burst_events:,} events from 4 threads…")
            bursts.append(measure_burst(env, fields, args.burst_events))
        if "lag" in args.only:
            status.print(f"lag: {args.lag_rate:,.0f} events/s for {args.lag_seconds:g} s…")
            lag = run_lag(env, rate=args.lag_rate, seconds=args.lag_seconds)
        if "profile" in args.only and args.profile_events:
            status.print("profiling one worker…")
            profile = run_profile(
                env,
                payloads[: args.profile_events],
                batch_size=args.batch_size,
                sampler=not args.no_sampler,
                save_to=args.profile_out,
            )
    caller = median_results(caller_runs) if caller_runs else None
    throughput = median_results(throughput_runs) if throughput_runs else None
    print_report(
        console,
        machine=machine,
        command=command,
        caller=caller,
        throughput=throughput,
        profile=profile,
        lag=lag,
        repeats=args.repeat,
        bursts=bursts,
    )
    problems = _problems(caller, throughput, profile)
    problems += [f"{b['name']}: dropped={b['dropped']:,}" for b in bursts if not b["all_sent"]]
    if lag is not None and not lag["ok"]:
        problems.append(f"lag: stored {lag['stored']:,} of {lag['events']:,}")
    for problem in problems:
        console.print(f"[red]error:[/red] {problem}")
    console.print(f"bench run {env.run_id} took {time.perf_counter() - began:.0f} s")
    if args.json is not None:
        report = {
            "command": command,
            "machine": machine,
            "caller": caller,
            "caller_runs": caller_runs,
            "throughput": throughput,
            "throughput_runs": throughput_runs,
            "profile": profile,
            "bursts": bursts,
            "lag": lag,
            "problems": problems,
        }
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2, default=str))
    return 1 if problems else 0


def _problems(
    caller: list[dict[str, Any]] | None,
    throughput: list[dict[str, Any]] | None,
    profile: dict[str, Any] | None,
) -> list[str]:
    """Wrong results (not slow ones): a figure measured on lost rows would mean nothing."""
    problems = []
    for r in caller or ():
        if r["name"] in (BUSY, SENDER_CAPACITY) and not r.get("all_sent"):
            problems.append(f"{r['name']}: not every event logged reached the stream")
    for r in throughput or ():
        if not r.get("ok", True):
            problems.append(f"{r['name']}: stored {r['stored']:,.0f} of {r['events']:,.0f}")
    if profile is not None and profile["stored"] != profile["events"]:
        problems.append(f"profile: stored {profile['stored']:,} of {profile['events']:,}")
    return problems

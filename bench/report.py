"""Turning bench results into tables: absolute figures, ratios to baselines, targets met or not."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.caller import BUSY, CALLER_TARGETS, SENDER_CAPACITY
from bench.profile import IDLE_STAGE
from bench.timing import SLOW_NS

Result = dict[str, Any]

#: The targets the pipeline issue sets (the caller's: bench.caller.CALLER_TARGETS).
WORKER_TARGETS = {1: 0.6, 2: 0.9}
#: The whole worker command (start-up included) against its steady rate.
WALL_TARGET = 0.85
LAG_P99_TARGET_S = 1.0


def median_results(runs: Sequence[Sequence[Result]]) -> list[Result]:
    """Per measurement (by name, in first-run order): each number's median over the runs.

    ``runs_<field>`` keeps every run's value of the headline figures, for the spread.
    """
    by_name: dict[str, list[Result]] = {}
    for run in runs:
        for result in run:
            by_name.setdefault(result["name"], []).append(result)
    merged = []
    for name, results in by_name.items():
        out: Result = {"name": name, "runs": len(results)}
        for key, value in results[0].items():
            values = [r.get(key) for r in results]
            if isinstance(value, bool) or not isinstance(value, int | float):
                out[key] = all(values) if isinstance(value, bool) else value
                continue
            numbers = [v for v in values if isinstance(v, int | float)]
            out[key] = statistics.median(numbers) if numbers else value
            out[f"runs_{key}"] = numbers
        merged.append(out)
    return merged


def _spread(result: Result, key: str) -> str:
    values = result.get(f"runs_{key}") or []
    if len(values) < 2:
        return "-"
    low, high = min(values), max(values)
    middle = statistics.median(values)
    return f"{_num(low)}..{_num(high)} (±{(high - low) / 2 / middle * 100:.0f}%)" if middle else "-"


def _num(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(value: float, base: float) -> str:
    return f"{value / base:,.1f}x" if base else "-"


def caller_table(all_results: Sequence[Result]) -> Table:
    results = [r for r in all_results if "p50_us" in r]
    busy = next((r for r in results if r["name"] == BUSY), results[0])
    capacity = next((r for r in all_results if r["name"] == SENDER_CAPACITY), None)
    table = Table(title="Caller cost per call, µs (each call timed alone)", title_justify="left")
    for column in ("measurement", "calls", "p50", "p99", "p99.9", "max"):
        table.add_column(column, justify="left" if column == "measurement" else "right")
    table.add_column("p50 xlog()", justify="right")
    table.add_column("p99 xlog()", justify="right")
    table.add_column("p99 over runs", justify="right")
    table.add_column("notes")
    for r in results:
        notes = []
        if r.get("sender_cpu_share") is not None:
            notes.append(f"sender CPU {r['sender_cpu_share'] * 100:.0f}%")
        if "sent_during" in r:
            notes.append(f"sent meanwhile {r['sent_during']:,.0f}")
        if r.get("spooled"):
            notes.append(f"spooled to disk {r['spooled']:,.0f}")
        if r.get("dropped"):
            notes.append(f"dropped {r['dropped']:,.0f}")
        if r.get("waited"):
            notes.append(f"calls that waited for room {r['waited']:,.0f}")
        if "slow" in r:
            in_gc = r.get("slow_during_gc", 0)
            note = f"slow {r['slow']:,.0f} ({in_gc:,.0f} in GC"
            if in_gc:
                note += f"; GC passes up to {_num(r.get('gc_max_us', 0))} µs"
            if r.get("slowest_during_gc"):
                note += "; the slowest in one"
            notes.append(note + ")")
        table.add_row(
            r["name"],
            f"{r['samples']:,.0f}",
            _num(r["p50_us"]),
            _num(r["p99_us"]),
            _num(r["p999_us"]),
            _num(r["max_us"]),
            _ratio(r["p50_us"], busy["p50_us"]),
            _ratio(r["p99_us"], busy["p99_us"]),
            _spread(r, "p99_us"),
            "; ".join(notes),
        )
    table.caption = (
        f"log() rows paced at {busy.get('rate', 0):,.0f} calls/s; baselines flat out. "
        f"'slow': calls over {SLOW_NS // 1000} µs, and how many overlapped a GC run "
        "(the rest waited for the GIL or the CPU). 'x log()': this row / the first row."
    )
    if capacity is not None:
        table.caption += (
            f" One process's sender drains {capacity['events_per_s']:,.0f} events/s "
            f"({capacity['events']:,.0f} logged flat out, until all were in Redis)."
        )
    table.caption_justify = "left"
    return table


def caller_targets_table(results: Sequence[Result]) -> Table:
    """Each caller-cost target with its measured p99 and the ratio to the target."""
    table = Table(title="Caller-cost targets (log() p99)", title_justify="left")
    for column in ("measurement", "target p99", "p99", "ratio", "p99.9", "max", "verdict"):
        table.add_column(column, justify="left" if column == "measurement" else "right")
    by_name = {r["name"]: r for r in results}
    for name, target in CALLER_TARGETS.items():
        r = by_name.get(name)
        if r is None:
            continue
        table.add_row(
            name,
            f"<= {target:.0f} µs",
            _num(r["p99_us"]),
            f"{r['p99_us'] / target:.2f}x",
            _num(r["p999_us"]),
            _num(r["max_us"]),
            "MET" if r["p99_us"] <= target else "MISSED",
        )
    return table


def bursts_table(results: Sequence[Result]) -> Table:
    table = Table(title="Bursts: nothing dropped while the spool has room", title_justify="left")
    for column in (
        "measurement",
        "logging s",
        "all sent s",
        "spooled",
        "dropped",
        "waited",
        "in stream",
    ):
        table.add_column(column, justify="left" if column == "measurement" else "right")
    for r in results:
        table.add_row(
            r["name"],
            f"{r['logging_seconds']:.1f}",
            f"{r['seconds']:.1f}",
            f"{r['spooled']:,.0f}",
            f"dropped={r['dropped']:,.0f}",
            f"{r.get('waited', 0):,.0f}",
            f"{r['stored']:,.0f}",
        )
    return table


def throughput_table(results: Sequence[Result]) -> Table:
    table = Table(
        title="Stream → Postgres, events/s (steady: between the first and the last commit)",
        title_justify="left",
    )
    table.add_column("measurement")
    for column in ("events", "stored", "events/s", "x COPY", "target", "events/s over runs"):
        table.add_column(column, justify="right")
    for column in ("wall s", "wall events/s", "CPU µs/event", "cores busy", "others' cores"):
        table.add_column(column, justify="right")
    for r in results:
        target = WORKER_TARGETS.get(int(r.get("processes", 0)))
        if r.get("floor_processes"):
            verdict = "a worker's best: the floor"
        elif target is None:
            verdict = "ceiling" if r is results[0] else "part of it"
        else:
            verdict = f">= {target:.1f}x: {_met(r['vs_ceiling'] >= target)}"
            wall = r["wall_rate"] / r["rate"] if r["rate"] else 0.0
            verdict += f"; wall {wall:.2f}x steady (>= {WALL_TARGET}: {_met(wall >= WALL_TARGET)})"
        if not r.get("ok", True):
            verdict += " (ROWS WRONG)"
        parts = [r.get(f"cpu_{k}_us") for k in ("client", "postgres", "redis")]
        cpu = "-"
        if all(p is not None for p in parts):
            cpu = " + ".join(f"{p:.0f}" for p in parts) + f" = {r['cpu_total_us']:.0f}"
        table.add_row(
            r["name"],
            f"{r['events']:,.0f}",
            f"{r['stored']:,.0f}",
            f"{r['rate']:,.0f}",
            f"{r['vs_ceiling']:.2f}x",
            verdict,
            _spread(r, "rate"),
            f"{r['wall_seconds']:.2f}",
            f"{r['wall_rate']:,.0f}",
            cpu,
            _maybe(r.get("cores_busy"), ".2f"),
            _maybe(r.get("other_cores"), ".2f"),
        )
    table.caption = (
        "wall: the whole worker command, process start-up and the burst mode's last empty "
        "read included. CPU µs/event over the steady window: client (the COPY's Python "
        "process, or the worker processes) + Postgres (the bench database's backends) + "
        "Redis (the whole server, shared) = total; cores busy = total CPU / elapsed; "
        "others' cores: what the rest of the machine used meanwhile."
    )
    table.caption_justify = "left"
    return table


def _met(met: bool) -> str:
    return "MET" if met else "MISSED"


def lag_table(lag: Result) -> Table:
    table = Table(title=f"End-to-end lag: {lag['name']}", title_justify="left")
    for column in ("measurement", "events", "p50 s", "p99 s", "max s", "target"):
        table.add_column(column, justify="left" if column == "measurement" else "right")
    for key, what, count in (
        ("probe", "logged → row visible to a reader (probes)", lag["probes"]),
        ("row", "logged → storing transaction began (created_at), every row", lag["rows"]),
    ):
        p50, p99, worst = (lag.get(f"{key}_{q}_s") for q in ("p50", "p99", "max"))
        target = "-"
        if key == "probe" and p99 is not None:
            target = f"p99 < {LAG_P99_TARGET_S:g} s: {_met(p99 < LAG_P99_TARGET_S)}"
        table.add_row(what, f"{count:,}", _maybe(p50, ".3f"), _maybe(p99, ".3f"),
                      _maybe(worst, ".3f"), target)  # fmt: skip
    table.caption = (
        f"Logged at {lag['rate']:,.0f} events/s through AICallLogger; "
        f"{lag['stored']:,} of {lag['events']:,} rows stored."
    )
    table.caption_justify = "left"
    return table


def _maybe(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def stage_table(profile: Result) -> Table:
    table = Table(
        title=(
            f"One worker in-process, {profile['events']:,} events in "
            f"{profile['busy_seconds']:.2f} s ({profile['rate']:,.0f}/s): time by stage"
        ),
        title_justify="left",
    )
    for column in ("stage", "seconds", "share", "µs/event", "calls"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    cpu = profile.get("cpu_us_per_event") or {}
    table.caption = (
        "Shares are of the busy time (the final empty read left out). CPU µs/event: "
        + ", ".join(f"{k} {_maybe(v)}" for k, v in cpu.items())
    )
    table.caption_justify = "left"
    for s in sorted(profile["stages"], key=_stage_order):
        name = s["stage"]
        nested = name.startswith("prepare: ") and name != "prepare: total"
        nested = nested or name.startswith("Redis: trim")
        table.add_row(
            ("    " if nested else "") + name,
            f"{s['seconds']:.3f}",
            f"{s['share'] * 100:.1f}%" if s["share"] else "-",
            f"{s['us_per_event']:.1f}" if s["us_per_event"] else "-",
            f"{s['calls']:,}",
        )
    return table


_GROUPS = ("Redis: next", "Redis: trim", "prepare: total", "prepare", "Postgres", "Redis: XACK")


def _stage_order(stage: Result) -> tuple[int, float]:
    """Reading, preparing, writing, acknowledging, the rest; largest first within a group."""
    name = stage["stage"]
    group = next((i for i, g in enumerate(_GROUPS) if name.startswith(g)), len(_GROUPS))
    if name.startswith("other"):
        group += 1
    if name == IDLE_STAGE:
        group += 2
    return group, -stage["seconds"]


def hot_table(profile: Result, limit: int = 15) -> Table:
    table = Table(
        title="Hottest functions by self time (pyinstrument, a second run)", title_justify="left"
    )
    table.add_column("function")
    table.add_column("seconds", justify="right")
    table.add_column("share", justify="right")
    for h in profile["hot"][:limit]:
        table.add_row(h["function"], f"{h['seconds']:.3f}", f"{h['share'] * 100:.1f}%")
    return table


def machine_line(machine: Result) -> str:
    return (
        f"{machine['nproc']} x {machine['cpu']}, {machine['ram_gib']} GiB RAM, "
        f"Linux {machine['kernel']}; Python {machine['python']}, Postgres {machine['postgres']}, "
        f"Redis {machine['redis']}; psycopg {machine['psycopg']}, redis-py {machine['redis_py']}, "
        f"rq {machine['rq']}; load average at start {machine['load_avg']}; "
        f"schema: {', '.join(machine.get('migrations', []))}"
    )


def wide_console() -> Console:
    """Tables this wide do not fit 80 columns; a pipe or file gets them at full width."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def print_report(
    console: Console,
    *,
    machine: Result,
    command: str,
    caller: Sequence[Result] | None,
    throughput: Sequence[Result] | None,
    profile: Result | None,
    repeats: int,
    bursts: Sequence[Result] | None = None,
    lag: Result | None = None,
) -> None:
    console.print(f"[bold]ailedger bench[/bold] — {command}")
    console.print(machine_line(machine))
    if repeats > 1:
        console.print(f"Figures are medians of {repeats} runs; 'over runs' shows min..max.")
    if caller:
        console.print(caller_table(caller))
        console.print(caller_targets_table(caller))
    if bursts:
        console.print(bursts_table(bursts))
    if throughput:
        console.print(throughput_table(throughput))
    if lag:
        console.print(lag_table(lag))
    if caller or bursts or throughput or lag:
        console.print(targets_table(caller or (), bursts or (), throughput or (), lag))
    if profile:
        console.print(stage_table(profile))
        if profile.get("hot"):
            console.print(hot_table(profile))
        if profile.get("saved_to"):
            console.print(f"Full pyinstrument tree: {profile['saved_to']}")


def targets_table(
    caller: Sequence[Result],
    bursts: Sequence[Result],
    throughput: Sequence[Result],
    lag: Result | None,
) -> Table:
    """Every target measured in this run, in one place: the figure, the target, the ratio.

    The ratio is always the measured figure over the target: at most 1 meets an
    "at most" target, at least 1 an "at least" one.
    """
    table = Table(title="Targets", title_justify="left")
    for column in ("target", "measured", "wanted", "ratio", "verdict"):
        table.add_column(column, justify="left" if column == "target" else "right")

    def row(name: str, value: float, unit: str, wanted: float, at_most: bool) -> None:
        met = value <= wanted if at_most else value >= wanted
        sign = "<=" if at_most else ">="
        table.add_row(
            name,
            f"{_num(value)} {unit}".strip(),
            f"{sign} {_num(wanted)} {unit}".strip(),
            f"{value / wanted:.2f}x" if wanted else "-",
            _met(met),
        )

    by_name = {r["name"]: r for r in caller}
    for name, target in CALLER_TARGETS.items():
        if (r := by_name.get(name)) is not None:
            row(f"caller p99: {name}", r["p99_us"], "µs", target, at_most=True)
    for b in bursts:
        dropped = b["dropped"]
        table.add_row(
            f"{b['name']}: dropped",
            f"{dropped:,.0f}",
            "0",
            "-",
            _met(dropped == 0 and bool(b["all_sent"])),
        )
    for r in throughput:
        processes = int(r.get("processes", 0))
        if (target := WORKER_TARGETS.get(processes)) is None:
            continue
        row(f"{r['name']}: x the COPY ceiling", r["vs_ceiling"], "x", target, at_most=False)
        wall = r["wall_rate"] / r["rate"] if r["rate"] else 0.0
        row(f"{r['name']}: whole command / steady", wall, "x", WALL_TARGET, at_most=False)
    if lag is not None and lag.get("probe_p99_s") is not None:
        row("lag p99, logged → row visible", lag["probe_p99_s"], "s", LAG_P99_TARGET_S, True)
    caption = "ratio: measured / wanted; an 'at most' target is met at <= 1x, 'at least' at >= 1x."
    floors = [r for r in throughput if r.get("floor_processes")]
    if floors:
        # What the worker targets are up against on this machine, in this run.
        reached = ", ".join(
            f"{r['floor_processes']} process{'es' if r['floor_processes'] > 1 else ''}"
            f" {r['vs_ceiling']:.2f}x"
            for r in floors
        )
        caption += (
            f"\nPlumbing floor (read, decode, COPY, XACK; nothing validated, priced or scored):"
            f" {reached} the COPY ceiling, the most a worker could reach here."
        )
    table.caption = caption
    table.caption_justify = "left"
    return table

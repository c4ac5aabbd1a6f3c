"""Where a worker's time goes: one in-process worker draining a filled stream, timed by stage.

The stages are the worker's own functions, wrapped for the run with a timer that
costs well under a microsecond per call: reading (XREADGROUP/XAUTOCLAIM), parsing
and validating each entry, pricing, scoring, building the rows, writing (COPY into
staging, INSERT … ON CONFLICT, commit) and acknowledging. When pyinstrument is
installed, a sampling profile of the same run names the hottest functions too
(``pip install pyinstrument``; it is not a dependency of ailedger).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bench.throughput as throughput
import worker.consumer
import worker.prepare
import worker.source
import worker.writer
from ailedger.settings import Settings
from bench.cpu import CpuSampler
from bench.env import BenchEnv, database_name
from bench.events import fill_stream
from worker.consumer import Worker
from worker.pricing import PriceBook
from worker.source import StreamSource
from worker.writer import BatchWriter

Result = dict[str, Any]

_READ_STAGE = "Redis: next batch (XREADGROUP, XAUTOCLAIM, trim)"
IDLE_STAGE = "Redis: empty reads (burst mode's end of stream)"


def _entries(result: Any) -> Any:
    # _next_entries returns the entries, or (entries, redelivered).
    return result[0] if isinstance(result, tuple) else result


OTHER_STAGE = "other: the loop, counters, logging, batch bookkeeping"
#: Stages that do not nest in one another: with OTHER_STAGE they add up to the busy time.
TOP_LEVEL = frozenset(
    {
        _READ_STAGE,
        "prepare: total",
        "Postgres: COPY + INSERT + commit",
        "Redis: XACK",
        "Redis: heartbeat",
    }
)

#: (owner, attribute, stage): what is timed, and under which name.
_STAGES: tuple[tuple[Any, str, str], ...] = (
    (StreamSource, "next_batch", _READ_STAGE),
    (StreamSource, "housekeeping", "Redis: trim acknowledged, prune consumers"),
    (worker.consumer, "prepare_batch", "prepare: total"),
    (worker.prepare, "parse_entry", "prepare: parse + validate (orjson, pydantic)"),
    (PriceBook, "price_batch", "prepare: pricing"),
    (worker.prepare, "confidence_score", "prepare: scoring (confidence_score)"),
    (worker.prepare, "decide_action", "prepare: scoring (decide_action)"),
    (worker.prepare, "_json", "prepare: JSON for jsonb columns"),
    (worker.writer, "write_batch", "Postgres: COPY + INSERT + commit"),
    (BatchWriter, "acknowledge", "Redis: XACK"),
    (Worker, "_heartbeat", "Redis: heartbeat"),
)


class StageClock:
    """Total time and call count per stage name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        clock = time.perf_counter
        seconds, calls = self.seconds, self.calls
        reads = stage == _READ_STAGE

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = clock()
            result = None
            try:
                result = function(*args, **kwargs)
                return result
            finally:
                # The burst worker's last read waits out its BLOCK on an empty stream:
                # how it notices the end, not a cost of reading.
                name = IDLE_STAGE if reads and not _entries(result) else stage
                seconds[name] += clock() - began
                calls[name] += 1

        return timed

    @contextmanager
    def installed(self) -> Iterator[StageClock]:
        # A stage the worker no longer has is skipped, so the bench outlives refactors.
        present = [(o, n, s) for o, n, s in _STAGES if callable(getattr(o, n, None))]
        saved = [(owner, name, getattr(owner, name)) for owner, name, _ in present]
        try:
            for owner, name, stage in present:
                setattr(owner, name, self.wrap(stage, getattr(owner, name)))
            yield self
        finally:
            for owner, name, original in saved:
                setattr(owner, name, original)


def _hot_functions(session: Any, limit: int) -> list[tuple[str, float]]:
    """Self time per function across pyinstrument's call tree, largest first."""
    totals: dict[str, float] = defaultdict(float)
    stack = [session.root_frame()]
    while stack:
        frame = stack.pop()
        if frame is None or frame.is_synthetic:
            continue  # a synthetic frame's time is already its parent's self time
        self_time = frame.total_self_time
        if self_time > 0:
            totals[f"{frame.function} ({frame.file_path_short}:{frame.line_no})"] += self_time
        stack.extend(frame.children)
    return sorted(totals.items(), key=lambda item: item[1], reverse=True)[:limit]


def _drain(
    env: BenchEnv, payloads: Sequence[bytes], *, batch_size: int, profiler: Any = None
) -> tuple[StageClock, float, int, Any, Result]:
    """One burst worker over a fresh stream and database.

    Returns (stages, wall, stored, samples, CPU seconds by process group).
    """
    url = env.fresh_database()
    stream = env.key(f"profile-{time.monotonic_ns()}")
    client = env.redis()
    session = None
    try:
        fill_stream(client, stream, payloads)
        settings = Settings(
            redis_url=env.redis_url,
            database_url=url,
            stream=stream,
            group=throughput.GROUP,
            batch_size=batch_size,
        )
        clock = StageClock()
        sampler = CpuSampler(database=database_name(url), fixed=env.redis_pid())
        with clock.installed(), sampler:
            consumer = Worker(settings, burst=True)
            began, cpu_began = time.time(), time.thread_time()
            if profiler is not None:
                profiler.start()
            try:
                consumer.run()  # in this thread: its CPU is this thread's
            finally:
                if profiler is not None:
                    session = profiler.stop()
            ended, cpu_ended = time.time(), time.thread_time()
            wall = ended - began
    finally:
        client.delete(stream)
        client.close()
        env.drop_database(url)
    cpu = {
        "worker": cpu_ended - cpu_began,
        "postgres": sampler.seconds("postgres", began, ended),
        "redis": sampler.seconds("redis", began, ended),
    }
    return clock, wall, consumer.counters.inserted, session, cpu


def run_profile(
    env: BenchEnv,
    payloads: Sequence[bytes],
    *,
    batch_size: int = 500,
    sampler: bool = True,
    save_to: Path | None = None,
    top: int = 25,
) -> Result:
    """Stage times from one worker run, then (if pyinstrument is there) a sampled second run.

    Two runs, because the sampler's own cost lands mostly on Python code and would
    shift the stage shares; the stage timers cost too little to matter.
    """
    clock, wall, stored, _, cpu = _drain(env, payloads, batch_size=batch_size)
    n = len(payloads)
    busy = wall - clock.seconds.get(IDLE_STAGE, 0.0)
    accounted = sum(s for name, s in clock.seconds.items() if name in TOP_LEVEL)
    clock.seconds[OTHER_STAGE] = max(0.0, busy - accounted)
    stages = sorted(clock.seconds.items(), key=lambda item: item[1], reverse=True)
    result: Result = {
        "events": n,
        "stored": stored,
        "wall_seconds": wall,
        "busy_seconds": busy,
        "rate": n / busy,
        "stages": [
            {
                "stage": name,
                "seconds": s,
                "calls": clock.calls[name],
                "share": s / busy if name != IDLE_STAGE else 0.0,
                "us_per_event": s / n * 1e6 if name != IDLE_STAGE else 0.0,
            }
            for name, s in stages
        ],
        "cpu_us_per_event": {k: (v / n * 1e6 if v is not None else None) for k, v in cpu.items()},
        "sampler": None,
        "hot": [],
    }
    profiler = _profiler() if sampler else None
    if profiler is None:
        return result
    # The burst worker's last read blocks BURST_BLOCK_MS on an empty stream; the sampler
    # would count that wait as time in recv, so it is shortened for this run only.
    block_ms = worker.source.BURST_BLOCK_MS
    worker.source.BURST_BLOCK_MS = 5
    try:
        _, _, _, session, _ = _drain(env, payloads, batch_size=batch_size, profiler=profiler)
    finally:
        worker.source.BURST_BLOCK_MS = block_ms
    result["sampler"] = "pyinstrument"
    result["hot"] = [
        {"function": name, "seconds": s, "share": s / session.duration}
        for name, s in _hot_functions(session, top)
    ]
    if save_to is not None:
        save_to.write_text(_render(session))
        result["saved_to"] = str(save_to)
    return result


def _profiler() -> Any:
    try:
        from pyinstrument import Profiler
    except ImportError:
        return None
    return Profiler(interval=0.0005)


def _render(session: Any) -> str:
    from pyinstrument.renderers import ConsoleRenderer

    renderer = ConsoleRenderer(unicode=True, color=False, show_all=False, short_mode=False)
    return str(renderer.render(session))

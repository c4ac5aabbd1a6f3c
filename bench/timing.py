"""Timing calls one by one, and telling the garbage collector's pauses from other stalls."""

from __future__ import annotations

import gc
import math
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

Result = dict[str, Any]
Fields = dict[str, Any]

#: A call slower than this is an outlier worth explaining (the p99 target).
SLOW_NS = 20_000


def percentile(ordered: Sequence[int], q: float) -> int:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return 0
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summarize(durations: Sequence[int]) -> Result:
    ordered = sorted(durations)
    return {
        "samples": len(ordered),
        "p50_us": percentile(ordered, 0.50) / 1000,
        "p99_us": percentile(ordered, 0.99) / 1000,
        "p999_us": percentile(ordered, 0.999) / 1000,
        "max_us": (ordered[-1] if ordered else 0) / 1000,
        "mean_us": (sum(ordered) / len(ordered) / 1000) if ordered else 0.0,
    }


class GcWatch:
    """Records when the cyclic garbage collector ran, to tell its pauses from others."""

    def __init__(self) -> None:
        self.spans: list[tuple[int, int]] = []
        self._began = 0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter_ns()
        else:
            self.spans.append((self._began, time.perf_counter_ns()))

    @contextmanager
    def watching(self) -> Iterator[GcWatch]:
        gc.callbacks.append(self._callback)
        try:
            yield self
        finally:
            gc.callbacks.remove(self._callback)


def explain_slow(starts: Sequence[int], durations: Sequence[int], gcs: GcWatch) -> Result:
    """How many calls were over SLOW_NS, and how many of those overlapped a GC run."""
    spans = sorted(gcs.spans)
    slow = [(s, s + d) for s, d in zip(starts, durations, strict=True) if d > SLOW_NS]
    during_gc = sum(1 for a, b in slow if any(g0 < b and g1 > a for g0, g1 in spans))
    worst = max(range(len(durations)), key=durations.__getitem__, default=None)
    worst_in_gc = worst is not None and any(
        g0 < starts[worst] + durations[worst] and g1 > starts[worst] for g0, g1 in spans
    )
    return {
        "slow": len(slow),
        "slow_during_gc": during_gc,
        "slowest_during_gc": worst_in_gc,
        "gc_runs": len(spans),
        "gc_max_us": max((g1 - g0 for g0, g1 in spans), default=0) / 1000,
    }


def timed_calls(
    call: Callable[..., Any], events: Sequence[Fields], *, rate: float | None
) -> Result:
    """Time ``call(**fields)`` once per event, paced at ``rate`` calls/s (None: flat out).

    Pacing sleeps between calls, as a service waiting on its AI provider would, which
    is when a background sender gets the GIL without having to ask for it.
    """
    n = len(events)
    starts = array("q", bytes(8 * n))
    durations = array("q", bytes(8 * n))
    clock = time.perf_counter_ns
    period = 1e9 / rate if rate else 0.0
    sleep = time.sleep
    watch = GcWatch()
    with watch.watching():
        begin = clock()
        for i, fields in enumerate(events):
            if period:
                ahead = begin + i * period - clock()
                if ahead > 0:
                    sleep(ahead / 1e9)
            t0 = clock()
            call(**fields)
            t1 = clock()
            starts[i] = t0
            durations[i] = t1 - t0
        elapsed = clock() - begin
    result = summarize(durations)
    result.update(explain_slow(starts, durations, watch))
    result["achieved_rate"] = n / (elapsed / 1e9) if elapsed else 0.0
    return result

"""CPU time by process group during a measurement: worker processes, Postgres backends, Redis.

A thread samples ``/proc/<pid>/stat`` every few milliseconds for the processes of
interest, so CPU can be counted over any window afterwards (the steady part of a
worker run, between its first and last commit). Linux only; elsewhere every
figure is None. Redis is a shared server: its CPU includes whatever else uses it.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PROC = Path("/proc")
DISCOVER_EVERY_S = 0.1
#: The pseudo-group of the whole machine's busy CPU: what others used is it minus ours.
MACHINE = "machine"


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds used) of a live process, or None."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after it.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS


def _machine_busy() -> float | None:
    """CPU seconds all cores have spent busy since boot (not idle, not waiting for I/O)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal …: busy = all but idle and iowait.
    values = [int(v) for v in fields[1:9]]
    return (sum(values) - values[3] - values[4]) / _TICKS


def _cmdline(pid: int) -> str:
    try:
        return (_PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class CpuSampler:
    """Samples the CPU time of process groups; ``seconds(group, t0, t1)`` afterwards.

    Groups: ``workers`` (the given root pids and their descendants), ``postgres``
    backends whose title names a database, fixed pids (``redis``), and ``machine``,
    the busy time of all cores together.
    """

    def __init__(
        self,
        *,
        database: str | None = None,
        roots: Callable[[], list[int]] | None = None,
        fixed: dict[str, int] | None = None,
        interval: float = 0.02,
    ) -> None:
        self.database = database
        self.roots = roots or (lambda: [])
        self.fixed = fixed or {}
        self.interval = interval
        self.enabled = _PROC.is_dir()
        # group -> pid -> [(time, cpu seconds)]
        self.samples: dict[str, dict[int, list[tuple[float, float]]]] = defaultdict(dict)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._titles: dict[int, str] = {}
        self._groups: dict[str, set[int]] = {}

    def __enter__(self) -> CpuSampler:
        if self.enabled:
            self._discover()
            self._sample()
            self._thread = threading.Thread(target=self._run, name="bench-cpu", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._sample()

    def _run(self) -> None:
        # Finding processes reads all of /proc; sampling the known ones is cheap. New
        # worker processes and backends appear at start-up, long before the first commit.
        next_discovery = time.monotonic() + DISCOVER_EVERY_S
        while not self._stop.wait(self.interval):
            if time.monotonic() >= next_discovery:
                self._discover()
                next_discovery = time.monotonic() + DISCOVER_EVERY_S
            self._sample()

    def _discover(self) -> None:
        parents: dict[int, list[int]] = defaultdict(list)
        alive = []
        for entry in _PROC.iterdir():
            if entry.name.isdigit():
                found = _stat(int(entry.name))
                if found is not None:
                    alive.append(int(entry.name))
                    parents[found[0]].append(int(entry.name))
        tree: set[int] = set()
        stack = list(self.roots())
        while stack:
            pid = stack.pop()
            if pid not in tree:
                tree.add(pid)
                stack.extend(parents.get(pid, ()))
        groups: dict[str, set[int]] = {"workers": tree}
        if self.database:
            needle = f" {self.database} "
            groups["postgres"] = set()
            for pid in alive:
                title = self._titles.get(pid)
                if title is None:
                    title = self._titles[pid] = _cmdline(pid)
                if title.startswith("postgres:") and needle in title:
                    groups["postgres"].add(pid)
        for name, pid in self.fixed.items():
            groups[name] = {pid}
        self._groups = groups

    def _sample(self) -> None:
        now = time.time()
        busy = _machine_busy()
        if busy is not None:
            self.samples[MACHINE].setdefault(0, []).append((now, busy))
        for group, pids in self._groups.items():
            series = self.samples[group]
            for pid in pids:
                found = _stat(pid)
                if found is not None:
                    series.setdefault(pid, []).append((now, found[1]))

    def seconds(self, group: str, start: float, end: float) -> float | None:
        """CPU seconds the group used between two ``time.time()`` readings."""
        if not self.enabled:
            return None
        total = 0.0
        for series in self.samples.get(group, {}).values():
            times = [t for t, _ in series]
            at_end = bisect.bisect_right(times, end) - 1
            if at_end < 0:
                continue  # started after the window
            at_start = bisect.bisect_right(times, start) - 1
            # A process first seen inside the window started there: all its CPU counts.
            before = series[at_start][1] if at_start >= 0 else 0.0
            total += series[at_end][1] - before
        return total

"""Running N worker processes: start, forward stop signals, restart the ones that crash."""

from __future__ import annotations

import gc
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from multiprocessing.context import ForkContext, SpawnContext
from types import FrameType
from typing import Any

import structlog
from prometheus_client.registry import Collector

from worker.settings import WorkerSettings
from worker.shards import ShardedWorker

log = structlog.get_logger("ailedger.supervisor")

#: A crashed worker is restarted no faster than this, so a crash loop cannot spin.
RESTART_DELAY_S = 1.0


def install_stop_handlers(stop: Any) -> None:
    """SIGTERM/SIGINT: finish the batch and exit; a second signal exits at once."""
    received = {"count": 0}

    def handler(signum: int, frame: FrameType | None) -> None:
        received["count"] += 1
        if received["count"] > 1:
            log.warning("second signal: exiting now", signal=signal.Signals(signum).name)
            os._exit(128 + signum)
        log.info("stopping after the current batch", signal=signal.Signals(signum).name)
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def tune_gc() -> None:
    """Garbage collection for a process that is a worker and nothing else.

    A worker allocates a few dozen containers per event, and with CPython's defaults
    (a collection every 700) each batch's still-live entries are scanned and promoted
    again and again, and every full collection walks the price catalog and the
    imported modules. They are frozen out of the collector once, here, and young
    collections run every 50,000 allocations: about a fifth less CPU per event
    (docs/performance.md). Cycles are still collected. Only for the worker's own
    processes (``ailedger worker``), never in a process that embeds a worker.
    """
    from genai_prices.data_snapshot import get_snapshot

    get_snapshot()  # the catalog, loaded now so that it is frozen with the rest
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1_000)


def _worker_main(settings: WorkerSettings, burst: bool, handle_signals: bool) -> None:
    from worker.logs import configure_logging

    if not handle_signals:
        # The parent decides when to stop; a terminal's Ctrl-C must not kill children
        # mid-batch. A forked child starts with the supervisor's handlers: until its own
        # below, a SIGTERM ends it (nothing is read yet) instead of going to that copy.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    configure_logging()
    tune_gc()
    worker = ShardedWorker(settings, burst=burst)
    if handle_signals:
        install_stop_handlers(worker.stop)
    else:
        signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    threading.Thread(
        target=_stop_when_orphaned, args=(worker,), name="ailedger-parent-watch", daemon=True
    ).start()
    worker.run()
    if worker.failure is not None:
        sys.exit(1)


def _stop_when_orphaned(worker: ShardedWorker) -> None:
    """A supervisor killed with SIGKILL cannot forward a stop: notice it from here."""
    parent = os.getppid()
    while not worker.stopping:
        if os.getppid() != parent:
            log.warning("supervisor is gone; stopping after the current batch")
            worker.stop()
            return
        time.sleep(1.0)


def run_workers(
    settings: WorkerSettings,
    *,
    processes: int = 1,
    burst: bool = False,
    handle_signals: bool = True,
    stop_event: threading.Event | None = None,
    metrics_collectors: Sequence[Collector] = (),
    own_process: bool = False,
) -> int:
    """Run ``processes`` workers until stopped (or drained, with ``burst``); returns an exit code.

    With one process the worker runs in this process; ``own_process`` (the
    ``ailedger worker`` command) says the process is the worker's alone, so its
    garbage collection is tuned for it (:func:`tune_gc`), as every child's is. With
    more, each is a child process (forked from this one when it is the worker's alone,
    :func:`_process_context`); SIGTERM/SIGINT are forwarded so that each finishes
    its batch, and a child that dies unexpectedly is restarted (except in burst mode). With
    ``settings.metrics_port`` the workers' metrics, and ``metrics_collectors``, are
    served on that port.
    """
    stop_event = stop_event or threading.Event()
    port = settings.metrics_port
    if processes > 1 and port:
        from worker.metrics import multiprocess_metrics

        # One /metrics for all children, entered before any starts (prometheus multiprocess).
        with multiprocess_metrics(settings, port, metrics_collectors):
            return _run_processes(
                settings, processes, burst, handle_signals, stop_event, own_process=False
            )
    if processes > 1:
        return _run_processes(
            settings, processes, burst, handle_signals, stop_event, own_process=own_process
        )
    server = None
    if port:
        from worker.metrics import serve_metrics

        server = serve_metrics(port, settings=settings, collectors=metrics_collectors)
    try:
        return _run_one(settings, burst, handle_signals, stop_event, own_process=own_process)
    finally:
        if server is not None:
            server.close()


def _run_one(
    settings: WorkerSettings,
    burst: bool,
    handle_signals: bool,
    stop_event: threading.Event,
    *,
    own_process: bool,
) -> int:
    if own_process:
        tune_gc()
    worker = ShardedWorker(settings, burst=burst)
    if handle_signals:
        install_stop_handlers(worker.stop)

    def stop_when_told() -> None:
        stop_event.wait()
        worker.stop()

    watcher = threading.Thread(target=stop_when_told, name="ailedger-stop", daemon=True)
    watcher.start()
    worker.run()
    return 0 if worker.failure is None else 1


def _process_context(own_process: bool) -> ForkContext | SpawnContext:
    """How children start: forked, when this process is the supervisor and nothing else.

    A spawned child imports the worker and loads the price catalog itself, about half
    a second of CPU each, and N of them do it at once on the same cores. Forked from a
    supervisor that did it once (and froze it out of the collector, :func:`tune_gc`,
    which the caller runs before forking), they start at once and share those pages.
    That is safe only while the supervisor has a single thread and no connections (a
    fork copies neither threads nor their locks' owners), on Linux: the ``ailedger
    worker`` command without a metrics server. Anything else, an embedding process
    above all, spawns.
    """
    if own_process and sys.platform == "linux" and threading.active_count() == 1:
        return mp.get_context("fork")
    return mp.get_context("spawn")


def _run_processes(
    settings: WorkerSettings,
    processes: int,
    burst: bool,
    handle_signals: bool,
    stop_event: threading.Event,
    *,
    own_process: bool,
) -> int:
    ctx = _process_context(own_process)
    if isinstance(ctx, ForkContext):
        tune_gc()  # once here, for every child forked from this process
    children: dict[int, Any] = {}

    def start(slot: int) -> None:
        proc = ctx.Process(
            target=_worker_main,
            args=(settings, burst, False),
            name=f"ailedger-worker-{slot}",
        )
        proc.start()
        children[slot] = proc

    if handle_signals:
        install_stop_handlers(stop_event.set)
    for slot in range(processes):
        start(slot)
    exit_code = 0
    while children:
        if stop_event.is_set():
            for proc in children.values():
                if proc.is_alive() and proc.pid is not None:
                    os.kill(proc.pid, signal.SIGTERM)
            for proc in children.values():
                proc.join()
            break
        for slot, proc in list(children.items()):
            if proc.is_alive():
                continue
            proc.join()
            del children[slot]
            if proc.exitcode != 0:
                log.warning("worker process died", slot=slot, exitcode=proc.exitcode)
                if not burst:
                    time.sleep(RESTART_DELAY_S)
                    start(slot)
                else:
                    exit_code = 1
        if children:  # the last one gone: return now, not after another poll
            # Woken by a child's exit as well as by the stop event's poll.
            mp_connection.wait([proc.sentinel for proc in children.values()], timeout=0.2)
    return exit_code

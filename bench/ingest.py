"""Events/s through ``POST /api/ingest`` next to direct XADD of the same events.

    python -m bench.ingest [--events 20000] [--redis-url URL]

Starts ``ailedger serve`` (one uvicorn process) on a free port with an ingest token,
posts the demo's realistic events in batches of 100 and 1000 from one and several
client threads, and XADDs the same events through the Python producer's wire format
(``encode_event`` + one pipelined round trip per batch) in the same run. The ratio is
what HTTP, JSON parsing and validation on the server cost over the producer's own path.
"""

from __future__ import annotations

import argparse
import copy
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
import orjson
import redis

from bench.events import MAX_PAYLOAD_BYTES, logged_fields
from producer.wire import encode_event, xadd_events

TOKEN = "bench-ingest-token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _events(n: int) -> list[dict[str, Any]]:
    events = logged_fields(n)
    for event in events:
        event["id"] = str(uuid.uuid4())
    return events


def _bodies(events: Sequence[dict[str, Any]], batch: int) -> list[bytes]:
    return [
        orjson.dumps(list(events[i : i + batch]), default=str, option=orjson.OPT_UTC_Z)
        for i in range(0, len(events), batch)
    ]


def ingest_rate(url: str, bodies: Sequence[bytes], events: int, threads: int) -> float:
    """Events/s posting ``bodies`` from ``threads`` clients, each with its own connection."""
    share = [bodies[i::threads] for i in range(threads)]
    failures: list[str] = []

    def post(mine: Sequence[bytes]) -> None:
        with httpx.Client(timeout=60) as client:
            for body in mine:
                answer = client.post(
                    url,
                    content=body,
                    headers={
                        "Authorization": f"Bearer {TOKEN}",
                        "Content-Type": "application/json",
                    },
                )
                if answer.status_code != 202 or answer.json()["rejected"]:
                    failures.append(answer.text[:200])

    workers = [threading.Thread(target=post, args=(part,)) for part in share]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"ingest refused events: {failures[0]}")
    return events / elapsed


def xadd_rate(
    client: redis.Redis, stream: str, events: Sequence[dict[str, Any]], batch: int
) -> float:
    """Events/s through the producer's wire format: encode_event, one pipeline per batch."""
    fields = [copy.deepcopy(e) | {"_logged_at": time.time()} for e in events]
    started = time.perf_counter()
    for i in range(0, len(fields), batch):
        payloads = [
            encode_event(f, max_payload_bytes=MAX_PAYLOAD_BYTES)[1] for f in fields[i : i + batch]
        ]
        xadd_events(client, stream, payloads)
    return len(events) / (time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=4, help="the 'several clients' case")
    parser.add_argument(
        "--redis-url", default=os.environ.get("AILEDGER_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args(argv)
    stream = f"ailedger-bench:{uuid.uuid4().hex[:8]}:events"
    port = _free_port()
    env = {
        **os.environ,
        "AILEDGER_REDIS_URL": args.redis_url,
        "AILEDGER_STREAM": stream,
        "AILEDGER_INGEST_TOKENS": TOKEN,
        "AILEDGER_LOG_JSON": "1",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "ailedger.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api/ingest"
    client = redis.Redis.from_url(args.redis_url)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(url, json=[], headers={"Authorization": f"Bearer {TOKEN}"}, timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("ailedger serve did not start") from None
                time.sleep(0.1)
        events = _events(args.events)
        size = len(_bodies(events, args.events)[0]) // args.events
        print(f"{args.events} events, ~{size} bytes each as JSON")
        print(f"{'path':<34}{'events/s':>12}{'vs XADD':>10}")
        for batch in (100, 1000):
            direct = xadd_rate(client, stream, events, batch)
            client.delete(stream)
            print(f"{f'direct XADD, batches of {batch}':<34}{direct:>12,.0f}{'1.00':>10}")
            bodies = _bodies(events, batch)
            for threads in sorted({1, args.threads}):
                rate = ingest_rate(url, bodies, len(events), threads)
                client.delete(stream)
                label = f"ingest, batches of {batch}, {threads} client{'s' if threads > 1 else ''}"
                print(f"{label:<34}{rate:>12,.0f}{rate / direct:>10.2f}")
    finally:
        server.terminate()
        server.wait(10)
        client.delete(stream)
        client.close()


if __name__ == "__main__":
    main()

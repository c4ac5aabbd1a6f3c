"""The events a bench run uses: the demo's realistic traffic, as logged and as stream entries."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from ailedger.demo.traffic import generate_jobs, new_uuid
from producer.constants import EVENT_FIELD, VERSION_FIELD, WIRE_VERSION
from producer.wire import encode_event

#: What the producer caps request/response payloads at by default (AICallLogger).
MAX_PAYLOAD_BYTES = 16_384


def logged_fields(n: int, *, seed: int = 1) -> list[dict[str, Any]]:
    """``n`` field dicts as a service passes them to ``log(**fields)``.

    The platform's mix (ailedger/demo/traffic.py): task, model, provider, token counts,
    latency, a confidence breakdown on most calls, the job id, small request and
    response payloads, a few errors and fallbacks.
    """
    return list(generate_jobs(random.Random(seed), n))


def stream_payloads(n: int, *, seed: int = 2) -> list[bytes]:
    """``n`` encoded events, byte for byte what the producer's sender XADDs.

    Timestamps are spread over the last days (within what workers accept) and ids are
    drawn from the seed, so the same seed gives the same rows.
    """
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(days=3)
    payloads = []
    for fields in generate_jobs(rng, n, start=start):
        fields["id"] = str(new_uuid(rng))
        _event_id, payload = encode_event(fields, max_payload_bytes=MAX_PAYLOAD_BYTES)
        payloads.append(payload)
    return payloads


def fill_stream(
    client: redis.Redis, stream: str, payloads: Sequence[bytes], *, chunk: int = 2_000
) -> None:
    """XADD every payload, pipelined, so filling costs little and no producer is involved."""
    for start in range(0, len(payloads), chunk):
        pipe = client.pipeline(transaction=False)
        for payload in payloads[start : start + chunk]:
            pipe.xadd(stream, {EVENT_FIELD: payload, VERSION_FIELD: WIRE_VERSION})
        pipe.execute()


def as_entries(payloads: Sequence[bytes]) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The payloads shaped as XREADGROUP returns them, for code that prepares rows offline."""
    return [
        (f"{i + 1}-0".encode(), {EVENT_FIELD: payload, VERSION_FIELD: WIRE_VERSION})
        for i, payload in enumerate(payloads)
    ]

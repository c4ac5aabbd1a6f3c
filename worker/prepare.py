"""From raw stream entries to table rows: validate, price, score."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
import orjson

from producer.constants import EVENT_FIELD
from producer.jobs import job_id_text
from producer.scoring import confidence_score, decide_action
from worker.event import ParsedEvent, Rejection, parse_entry
from worker.pricing import PriceBook
from worker.rollups import Tallies, roll_up
from worker.settings import WorkerSettings
from worker.store import Reject, Row

Entry = tuple[bytes, dict[bytes, bytes]]

#: No single AI call costs a million dollars: such a figure means broken token counts.
#: (It is also where ai_call_logs.cost, NUMERIC(18, 12), runs out of digits.)
MAX_CALL_COST = Decimal(1_000_000)


@dataclass(slots=True)
class PreparedBatch:
    rows: list[Row] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    #: Every stream id of the batch: acknowledged once rows and rejects are committed.
    ids: list[bytes] = field(default_factory=list)
    #: (stream id, raw payload) of each row, in row order: what a refused row is kept as.
    sources: list[tuple[bytes, bytes]] = field(default_factory=list)
    unpriced: int = 0
    #: ``roll_up(rows)``: the batch's rollups, added up while the previous batch commits.
    tallies: Tallies | None = None


_encode = msgspec.json.Encoder().encode


def _uuid_text(value: UUID) -> str:
    """``str(value)``, written by msgspec in C: 2.5 times faster than ``UUID.__str__``."""
    return _encode(value)[1:-1].decode()


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def raw_payload(fields: dict[bytes, bytes]) -> bytes:
    raw = fields.get(EVENT_FIELD)
    if raw is not None:
        return raw
    return orjson.dumps(
        {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in fields.items()}
    )


def prepare_batch(
    entries: Sequence[Entry],
    *,
    pricebook: PriceBook,
    settings: WorkerSettings,
    delivery_counts: dict[bytes, int] | None = None,
) -> PreparedBatch:
    """Validate every entry; price and score the valid ones; keep the others as rejects."""
    batch = PreparedBatch()
    parsed: list[tuple[ParsedEvent, str, bytes, dict[bytes, bytes]]] = []
    seen: set[str] = set()
    for stream_id, fields in entries:
        batch.ids.append(stream_id)
        result = parse_entry(fields)
        if isinstance(result, Rejection):
            batch.rejects.append(
                Reject(
                    stream_id=stream_id.decode(),
                    reason=result.reason,
                    raw=raw_payload(fields),
                    event_id=result.event_id,
                    delivery_count=(delivery_counts or {}).get(stream_id, 1),
                )
            )
            continue
        event_id = _uuid_text(result.event["id"])
        if event_id in seen:
            continue  # the same event sent twice in one batch: the table keeps one
        seen.add(event_id)
        parsed.append((result, event_id, stream_id, fields))

    prices = pricebook.price_batch([p.event for p, _, _, _ in parsed])
    weights = settings.confidence_weights
    rows = batch.rows
    for (item, event_id, stream_id, fields), priced in zip(parsed, prices, strict=True):
        event = item.event
        cost = priced.cost
        if cost is not None and cost >= MAX_CALL_COST:
            batch.rejects.append(
                Reject(
                    stream_id=stream_id.decode(),
                    reason=(
                        f"computed cost ${cost:,.2f} for one call is not plausible"
                        f" ({event.get('input_tokens')} input,"
                        f" {event.get('output_tokens')} output tokens"
                        f" of {event['model']}); check the token counts the service sent"
                    ),
                    raw=raw_payload(fields),
                    event_id=event_id,
                    delivery_count=(delivery_counts or {}).get(stream_id, 1),
                )
            )
            continue
        batch.sources.append((stream_id, raw_payload(fields)))
        breakdown = event.get("confidence_breakdown")
        score = event.get("confidence_score")
        if score is None and breakdown:
            score = confidence_score(breakdown, weights)
        error = event.get("error_message")
        action: str | None = event.get("action")
        reason = event.get("fallback_reason")
        if action is None:
            task = event["task"]
            action, derived = decide_action(
                score, error=error, threshold=settings.threshold_for(task)
            )
            reason = reason or derived
        if cost is None:
            batch.unpriced += 1
        job = event.get("job_id")
        job_id, job_key = (None, None) if job is None else job_id_text(job)
        texts = item.json
        # Positional, in Row's (the table's) column order: the hot path of every batch.
        rows.append(
            Row(
                event_id,
                event["timestamp"],
                job_id,
                job_key,
                event["task"],
                event["model"],
                event.get("provider"),
                event.get("input_tokens"),
                event.get("output_tokens"),
                event.get("cache_read_tokens"),
                event.get("cache_write_tokens"),
                event.get("cache_write_1h_tokens"),
                event.get("image_id"),
                cost,
                priced.source,
                event.get("latency_ms"),
                score,
                None if breakdown is None else orjson.dumps(breakdown).decode(),
                action,
                reason,
                texts.get("request_data") if texts else None,
                texts.get("response_data") if texts else None,
                error,
                _json(item.notes) if item.notes else None,
                event.get("service"),
            )
        )
    batch.tallies = roll_up(rows)
    return batch

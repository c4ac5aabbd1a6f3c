"""From raw stream entries to table rows: validate, price, score."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from producer.jobs import job_uuid
from producer.scoring import confidence_score, decide_action
from worker.event import ParsedEvent, Rejection, parse_entry
from worker.pricing import PriceBook
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


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def raw_payload(fields: dict[bytes, bytes]) -> bytes:
    from producer.constants import EVENT_FIELD

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
    parsed: list[tuple[ParsedEvent, bytes, dict[bytes, bytes]]] = []
    seen: set[Any] = set()
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
        if result.event.id in seen:
            continue  # the same event sent twice in one batch: the table keeps one
        seen.add(result.event.id)
        parsed.append((result, stream_id, fields))

    prices = pricebook.price_batch([p.event for p, _, _ in parsed])
    weights = settings.confidence_weights
    for (item, stream_id, fields), priced in zip(parsed, prices, strict=True):
        event = item.event
        if priced.cost is not None and priced.cost >= MAX_CALL_COST:
            batch.rejects.append(
                Reject(
                    stream_id=stream_id.decode(),
                    reason=(
                        f"computed cost ${priced.cost:,.2f} for one call is not plausible"
                        f" ({event.input_tokens} input, {event.output_tokens} output tokens"
                        f" of {event.model}); check the token counts the service sent"
                    ),
                    raw=raw_payload(fields),
                    event_id=str(event.id),
                    delivery_count=(delivery_counts or {}).get(stream_id, 1),
                )
            )
            continue
        batch.sources.append((stream_id, raw_payload(fields)))
        score = event.confidence_score
        if score is None:
            score = confidence_score(event.confidence_breakdown, weights)
        action: str | None = event.action
        reason = event.fallback_reason
        if action is None:
            action, derived = decide_action(
                score, error=event.error_message, threshold=settings.threshold_for(event.task)
            )
            reason = reason or derived
        if priced.cost is None:
            batch.unpriced += 1
        job_id, job_key = (None, None) if event.job_id is None else job_uuid(event.job_id)
        batch.rows.append(
            Row(
                id=str(event.id),
                timestamp=event.timestamp,
                job_id=None if job_id is None else str(job_id),
                job_key=job_key,
                task=event.task,
                model=event.model,
                provider=event.provider,
                input_tokens=event.input_tokens,
                output_tokens=event.output_tokens,
                cache_read_tokens=event.cache_read_tokens,
                cache_write_tokens=event.cache_write_tokens,
                cache_write_1h_tokens=event.cache_write_1h_tokens,
                image_id=event.image_id,
                cost=priced.cost,
                cost_source=priced.source,
                latency_ms=event.latency_ms,
                confidence_score=score,
                confidence_breakdown=_json(event.confidence_breakdown),
                action=action,
                fallback_reason=reason,
                request_data=item.json.get("request_data"),
                response_data=item.json.get("response_data"),
                error_message=event.error_message,
                ingest_notes=_json(item.notes or None),
                service=event.service,
            )
        )
    return batch

"""The event contract as JSON Schema, generated from the worker's own event model.

``python -m ailedger.ingest.schema > contract/event.schema.json`` writes the file every
producer (Python, TypeScript, anything posting to ``/api/ingest``) is tested against.
It is :class:`worker.event.CallEvent` in its validation mode: what a worker accepts,
with the OpenTelemetry GenAI names it also accepts listed under ``x-aliases``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from worker.event import ALIASES, EVENT, SOFT_FIELDS

SCHEMA_ID = "https://ailedger.dev/contract/event.schema.json"

DESCRIPTIONS = {
    "id": "The event id (a UUID): the idempotency key all the way to the table's primary key."
    " /api/ingest makes one when absent.",
    "timestamp": "When the call started (ISO 8601, UTC). /api/ingest uses the receive time"
    " less latency_ms when absent.",
    "task": "What the call was for, e.g. material_classification.",
    "model": "The model as the provider names it, e.g. claude-3-5-sonnet-20241022.",
    "job_id": "The processing job (e.g. a PDF upload) the call belongs to: a UUID, or the"
    " platform's own key (an integer or a string), stored as a UUID derived from it with"
    " the key kept beside it.",
    "provider": "anthropic, openai, together, ...: disambiguates pricing.",
    "input_tokens": "The whole input, cache reads and writes included.",
    "output_tokens": "Tokens generated.",
    "cache_read_tokens": "The part of input_tokens read from the provider's cache.",
    "cache_write_tokens": "The part of input_tokens written to the provider's cache.",
    "cache_write_1h_tokens": "The part of cache_write_tokens written to Anthropic's 1-hour"
    " cache (priced at 2x the input rate; the rest at the 5-minute rate).",
    "latency_ms": "How long the call took, in milliseconds.",
    "cost": "USD, when the service knows it; the worker prices the call otherwise.",
    "action": "What the service did with the answer; derived by the worker when absent.",
    "image_id": "The image a vision or embedding call was about (per-image cost).",
    "service": "The service that made the call; an ingest token bound to a service sets it.",
    "confidence_score": "0 to 1; computed by the worker from the breakdown when absent.",
    "confidence_breakdown": "Named scores in [0, 1]: model_confidence, completeness,"
    " consistency, validation.",
    "fallback_reason": "Why the service fell back to rules.",
    "error_message": "The error the call ended with.",
    "request_data": "The request payload, redacted and size-capped by the producer.",
    "response_data": "The response payload, redacted and size-capped by the producer.",
}

# pydantic writes constraints of an Annotated Field(...) under their Python names.
_KEYWORDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}


def _json_schema_keywords(node: Any) -> Any:
    if isinstance(node, dict):
        return {_KEYWORDS.get(k, k): _json_schema_keywords(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_json_schema_keywords(item) for item in node]
    return node


def event_schema() -> dict[str, Any]:
    """The JSON Schema of one event, as workers validate it."""
    generated = _json_schema_keywords(EVENT.json_schema(mode="validation"))
    properties: dict[str, Any] = {}
    for name, prop in generated["properties"].items():
        prop.pop("title", None)
        prop = {"description": DESCRIPTIONS[name], **prop}
        if name in ALIASES:
            prop["x-aliases"] = list(ALIASES[name])
        if name in SOFT_FIELDS:
            prop["x-soft"] = True
        properties[name] = prop
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "ailedger event",
        "description": (
            "One AI call, as producers write it to the stream and POST it to /api/ingest."
            " Generated from worker/event.py (python -m ailedger.ingest.schema); do not edit."
            " Fields marked x-soft are dropped with a note when invalid, never costing the"
            " call's record; others reject the event. x-aliases are other names workers"
            " accept (OpenTelemetry GenAI). Fields not listed are ignored."
        ),
        "type": "object",
        "required": generated["required"],
        "properties": properties,
    }


def render() -> str:
    """The text of contract/event.schema.json."""
    return json.dumps(event_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())

"""OpenTelemetry spans as ailedger events: OTLP traces (protobuf or JSON) → event fields.

A span becomes an event when it carries GenAI semantic-convention attributes
(``gen_ai.*``) or ailedger's own (``ailedger.*``); any other span is not an AI call and
is skipped, not refused. The event id is derived from the trace and span ids, so an
exporter that sends the same spans again never doubles a row.

Mapping: ``gen_ai.response.model`` (else ``gen_ai.request.model``) → model;
``gen_ai.provider.name`` (else the older ``gen_ai.system``) → provider; usage
attributes, current and older spellings, → token counts (``input_tokens`` is the whole
input, cache reads and writes included, as the conventions define it); the span's start →
timestamp and its duration → latency_ms; status ERROR → error_message (the status
message, else the exception event, else ``error.type``), from which the worker derives
``action = fallback_to_rules``. ``ailedger.<field>`` sets any event field
(``ailedger.task``, ``ailedger.job_id``, ``ailedger.image_id``, ``ailedger.action``…) and
``ailedger.confidence.<component>`` the confidence breakdown. Without ``ailedger.task``
the task is the span name (``chat gpt-4o-mini`` by the conventions), prefixed with the
operation when the name does not start with it. The resource's ``service.name`` is the
event's service unless the ingest token is bound to one.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from worker.event import EVENT_FIELDS

#: Fixed for ever: the namespace of span-derived event ids (uuid5 of trace id + span id).
SPAN_NAMESPACE = uuid.UUID("26db2fb7-0ac1-5f72-ae70-59ba3540ef45")
STATUS_ERROR = 2
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_MODEL = ("gen_ai.response.model", "gen_ai.request.model")
_PROVIDER = ("gen_ai.provider.name", "gen_ai.system")
_USAGE = {
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
    "cache_read_tokens": (
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
    ),
    "cache_write_tokens": (
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
    ),
}
_JSON_FIELDS = {"request_data", "response_data", "confidence_breakdown"}


class SpanFormatError(ValueError):
    """The export cannot be read as OTLP traces."""


@dataclass(slots=True)
class SpanView:
    """What ailedger reads of one span, whichever encoding it came in."""

    trace_id: str  # hex
    span_id: str  # hex
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status_code: int = 0
    status_message: str = ""
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"span {self.span_id or '?'} ({self.name or 'unnamed'})"


# -- protobuf -----------------------------------------------------------------


def _pb_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_pb_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _pb_attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def _pb_attributes(pairs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    pair: KeyValue
    for pair in pairs:
        out[pair.key] = _pb_value(pair.value)
    return out


def spans_from_protobuf(body: bytes) -> Iterator[SpanView]:
    """The spans of an ``ExportTraceServiceRequest`` in protobuf."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except Exception as exc:  # google.protobuf.message.DecodeError and friends
        raise SpanFormatError(f"body is not an OTLP ExportTraceServiceRequest: {exc}") from None
    for resource_spans in request.resource_spans:
        resource = _pb_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield SpanView(
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    name=span.name,
                    start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano,
                    attributes=_pb_attributes(span.attributes),
                    status_code=span.status.code,
                    status_message=span.status.message,
                    events=[(e.name, _pb_attributes(e.attributes)) for e in span.events],
                    resource=resource,
                )


# -- JSON (OTLP/HTTP JSON encoding: hex ids, int64 as strings) ------------------


def _json_value(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "intValue" in value:
        return _int(value["intValue"], "intValue")
    if "doubleValue" in value:
        return value["doubleValue"]
    if "arrayValue" in value:
        return [_json_value(v) for v in (value["arrayValue"] or {}).get("values") or []]
    if "kvlistValue" in value:
        return _json_attributes((value["kvlistValue"] or {}).get("values"))
    if "bytesValue" in value:
        try:
            return base64.b64decode(value["bytesValue"]).hex()
        except (binascii.Error, TypeError):
            return None
    return None


def _json_attributes(pairs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        if isinstance(pair, dict) and isinstance(pair.get("key"), str):
            out[pair["key"]] = _json_value(pair.get("value"))
    return out


def _int(value: Any, what: str) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        raise SpanFormatError(f"{what} {value!r} is not an integer") from None


def _status_code(value: Any) -> int:
    if isinstance(value, str) and not value.isdigit():
        return STATUS_ERROR if value.upper() in {"STATUS_CODE_ERROR", "ERROR"} else 0
    return _int(value, "status.code")


def _list(container: Any, *keys: str) -> list[Any]:
    if not isinstance(container, dict):
        return []
    for key in keys:
        value = container.get(key)
        if isinstance(value, list):
            return value
    return []


def spans_from_json(body: bytes) -> Iterator[SpanView]:
    """The spans of an ``ExportTraceServiceRequest`` in OTLP's JSON encoding."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SpanFormatError(f"body is not valid JSON: {exc}") from None
    if not isinstance(request, dict):
        raise SpanFormatError("body must be an ExportTraceServiceRequest object")
    for resource_spans in _list(request, "resourceSpans", "resource_spans"):
        resource = _json_attributes((resource_spans.get("resource") or {}).get("attributes"))
        for scope_spans in _list(
            resource_spans, "scopeSpans", "scope_spans", "instrumentationLibrarySpans"
        ):
            for span in _list(scope_spans, "spans"):
                if not isinstance(span, dict):
                    continue
                status = span.get("status") or {}
                yield SpanView(
                    trace_id=str(span.get("traceId") or "").lower(),
                    span_id=str(span.get("spanId") or "").lower(),
                    name=str(span.get("name") or ""),
                    start_ns=_int(span.get("startTimeUnixNano"), "startTimeUnixNano"),
                    end_ns=_int(span.get("endTimeUnixNano"), "endTimeUnixNano"),
                    attributes=_json_attributes(span.get("attributes")),
                    status_code=_status_code(status.get("code")),
                    status_message=str(status.get("message") or ""),
                    events=[
                        (str(e.get("name") or ""), _json_attributes(e.get("attributes")))
                        for e in _list(span, "events")
                        if isinstance(e, dict)
                    ],
                    resource=resource,
                )


# -- mapping ------------------------------------------------------------------


def is_ai_call(span: SpanView) -> bool:
    return any(key.startswith(("gen_ai.", "ailedger.")) for key in span.attributes)


def event_id(span: SpanView) -> str:
    """The same id every time the same span is exported."""
    return str(uuid.uuid5(SPAN_NAMESPACE, f"{span.trace_id}{span.span_id}"))


def _first(attributes: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        value = attributes.get(name)
        if value is not None and value != "":
            return value
    return None


def _error_message(span: SpanView) -> str:
    if span.status_message:
        return span.status_message
    for name, attributes in span.events:
        if name == "exception":
            kind = attributes.get("exception.type")
            message = attributes.get("exception.message")
            if kind or message:
                return ": ".join(str(part) for part in (kind, message) if part)
    kind = span.attributes.get("error.type")
    return f"{kind}" if kind else "span ended with status ERROR"


def _task(span: SpanView, operation: Any) -> str | None:
    name = span.name.strip()
    if operation and name and not name.startswith(str(operation)):
        return f"{operation} {name}"
    return name or (str(operation) if operation else None)


def span_to_event(span: SpanView) -> dict[str, Any]:
    """The event fields of an AI-call span (see :func:`is_ai_call`)."""
    attributes = span.attributes
    event: dict[str, Any] = {"id": event_id(span)}
    if span.start_ns > 0:
        event["timestamp"] = (_EPOCH + timedelta(microseconds=span.start_ns // 1000)).isoformat()
    if span.end_ns >= span.start_ns > 0:
        event["latency_ms"] = round((span.end_ns - span.start_ns) / 1_000_000)
    operation = attributes.get("gen_ai.operation.name")
    task = _task(span, operation)
    if task:
        event["task"] = task
    for name, value in (
        ("model", _first(attributes, _MODEL)),
        ("provider", _first(attributes, _PROVIDER)),
        *((name, _first(attributes, keys)) for name, keys in _USAGE.items()),
    ):
        if value is not None:
            event[name] = value
    if span.status_code == STATUS_ERROR:
        event["error_message"] = _error_message(span)
    service = span.resource.get("service.name")
    if isinstance(service, str) and service and not service.startswith("unknown_service"):
        event["service"] = service
    breakdown: dict[str, Any] = {}
    for key, value in attributes.items():
        if not key.startswith("ailedger."):
            continue
        name = key[len("ailedger.") :]
        if name.startswith("confidence."):
            breakdown[name[len("confidence.") :]] = value
        elif name in EVENT_FIELDS and name != "id":
            if name in _JSON_FIELDS and isinstance(value, str):
                with contextlib.suppress(orjson.JSONDecodeError):  # else the worker notes it
                    value = orjson.loads(value)
            event[name] = value
    if breakdown:
        event["confidence_breakdown"] = {**breakdown, **(event.get("confidence_breakdown") or {})}
    return event

"""The event as workers accept it: validation of one raw stream entry.

``parse_entry`` turns the bytes a producer wrote into a :class:`CallEvent`, or into a
:class:`Rejection` whose reason a person can act on. Fields that decide what a call
cost (ids, task, model, timestamps, token counts, a reported cost, the action) are
strict: a bad one rejects the entry, which is kept in the dead letters. Descriptive
fields (breakdown, payloads, messages) are soft: a bad one is dropped or cleaned and
the row notes it, so the call's cost record is never lost to a malformed extra.

Most entries take a fast path first (:func:`parse_fast`): one compiled decode and check
(msgspec) of exactly the shapes producers write, giving what the careful path would
give. Anything else (other spellings, escapes, aliases, a value to clean or refuse)
goes the careful way: orjson, then pydantic, whose messages and notes the rows keep.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import chain
from typing import Annotated, Any, Literal, Required
from uuid import UUID

import msgspec
import orjson
from pydantic import (
    AfterValidator,
    AliasChoices,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    with_config,
)
from typing_extensions import TypedDict, get_type_hints

from producer.constants import EVENT_FIELD
from producer.jobs import CANONICAL_UUID
from producer.redact import repair_text, repair_unicode

INT32_MAX = 2**31 - 1
#: Calls older than this are almost surely a producer bug (epoch zero, ms read as s).
OLDEST_TIMESTAMP = datetime(2015, 1, 1, tzinfo=UTC)
#: How far ahead of the worker's clock a producer's clock may run.
MAX_CLOCK_SKEW = timedelta(days=1)
# The same bounds in epoch seconds: two float comparisons, where comparing with
# pydantic's TzInfo calls back into Python for each side's offset.
_OLDEST_S = OLDEST_TIMESTAMP.timestamp()
_MAX_SKEW_S = MAX_CLOCK_SKEW.total_seconds()
MAX_TEXT = 10_000
MAX_JSON_BYTES = 256 * 1024
#: Longest job key and image id kept.
MAX_KEY = 500

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _not_a_boolean(value: Any) -> Any:
    # JSON true is not a count: Python would read it as 1 token.
    if isinstance(value, bool):
        raise ValueError("must be a whole number, not true/false")
    return value


# Constraints before the Python check, so that pydantic applies them natively to the
# int: after a BeforeValidator they run as Python functions, 0.4 µs a field.
Count = Annotated[int, Field(ge=0, le=INT32_MAX, strict=False), BeforeValidator(_not_a_boolean)]


def _job_ref(value: Any) -> UUID | str | None:
    """A job as the service named it: a UUID, or a key (an integer or a string)."""
    if value is None or isinstance(value, UUID):
        return value
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be a UUID, an integer or a string")
    text = str(value)
    if isinstance(value, str):
        if CANONICAL_UUID.fullmatch(text):
            return text  # a UUID already in its stored form (producer/jobs.job_id_text)
        try:
            return UUID(text)
        except ValueError:
            pass
    if not text.strip():
        raise ValueError("must not be empty")
    if len(text) > MAX_KEY:
        raise ValueError(f"a job key is at most {MAX_KEY} characters")
    return text


def _integer_as_text(value: Any) -> Any:
    # Integer image ids are common (database keys); they are stored as their text.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


#: A job's UUID, or its key as given (``worker.prepare`` derives the UUID, producer/jobs.py).
JobRef = Annotated[UUID | str | None, PlainValidator(_job_ref)]


def _epoch_seconds(value: Any) -> Any:
    """A number is seconds since the epoch (pydantic alone would read a large one as ms)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError("timestamp must be a finite number of seconds since the epoch")
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"timestamp {value!r} is outside any plausible date") from None
    return value


def _plausible_time(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    seconds = value.timestamp()
    if seconds < _OLDEST_S:
        raise ValueError(
            f"timestamp {value.isoformat()} is before 2015; check the producer's clock or units"
        )
    if seconds > time.time() + _MAX_SKEW_S:
        raise ValueError(
            f"timestamp {value.isoformat()} is more than a day in the future;"
            " check the producer's clock"
        )
    return value


def _finite_number(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return Decimal(repr(value))
    return value


#: Other names workers accept for a field: OpenTelemetry GenAI's.
ALIASES: dict[str, tuple[str, ...]] = {
    "task": ("gen_ai.operation.name",),
    "model": ("gen_ai.request.model", "gen_ai.response.model"),
    "provider": ("gen_ai.provider.name", "gen_ai.system"),
    "input_tokens": ("gen_ai.usage.input_tokens",),
    "output_tokens": ("gen_ai.usage.output_tokens",),
    "cache_read_tokens": (
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
    ),
    "cache_write_tokens": (
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
    ),
}


def _also(name: str) -> Any:
    return Field(validation_alias=AliasChoices(name, *ALIASES[name]))


Timestamp = Annotated[datetime, BeforeValidator(_epoch_seconds), AfterValidator(_plausible_time)]
Cost = Annotated[Decimal, BeforeValidator(_finite_number), Field(ge=0, lt=1_000_000)]
Score = Annotated[Decimal, BeforeValidator(_finite_number), Field(ge=0, le=1)]
# As Count: the constraint first, native; the Python step before it.
ImageId = Annotated[str, StringConstraints(max_length=MAX_KEY), BeforeValidator(_integer_as_text)]
#: Each component a finite score in [0, 1], checked natively (a bad one is named).
Breakdown = dict[str, Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]]


@with_config(ConfigDict(extra="ignore", populate_by_name=True))
class CallEvent(TypedDict, total=False):
    """One AI call, validated: only the fields the event carried are present.

    A typed dict, not a model: validating an event is the worker's hottest step, and
    pydantic fills a dict several times faster than it builds a model instance.
    """

    id: Required[UUID]
    timestamp: Required[Timestamp]
    task: Required[Annotated[Name, _also("task")]]
    model: Required[Annotated[Name, _also("model")]]
    job_id: JobRef
    provider: Annotated[Name | None, _also("provider")]
    input_tokens: Annotated[Count | None, _also("input_tokens")]
    output_tokens: Annotated[Count | None, _also("output_tokens")]
    cache_read_tokens: Annotated[Count | None, _also("cache_read_tokens")]
    cache_write_tokens: Annotated[Count | None, _also("cache_write_tokens")]
    #: The part of cache_write_tokens written to a 1-hour cache (Anthropic's ``ttl: 1h``).
    cache_write_1h_tokens: Count | None
    latency_ms: Count | None
    cost: Cost | None
    action: Literal["use_ai_result", "fallback_to_rules"] | None
    # Soft fields: a bad value is dropped with a note instead of rejecting the call.
    image_id: ImageId | None
    #: The service that made the call (an ingest token bound to a service sets it).
    service: Name | None
    confidence_score: Score | None
    confidence_breakdown: Breakdown | None
    fallback_reason: str | None
    error_message: str | None
    request_data: dict[str, Any] | None
    response_data: dict[str, Any] | None


#: Validates one decoded event into a :class:`CallEvent`.
EVENT = TypeAdapter(CallEvent)
#: Every field an event may carry, by its own name.
EVENT_FIELDS: frozenset[str] = frozenset(CallEvent.__annotations__)


#: Fields whose failure drops only the field, not the event.
SOFT_FIELDS = frozenset(
    {
        "job_id",
        "image_id",
        "service",
        "confidence_score",
        "confidence_breakdown",
        "fallback_reason",
        "error_message",
        "request_data",
        "response_data",
    }
)
_TEXT_FIELDS = (
    "task",
    "model",
    "provider",
    "image_id",
    "service",
    "fallback_reason",
    "error_message",
)
_JSON_FIELDS = ("request_data", "response_data")


@dataclass(slots=True)
class ParsedEvent:
    #: The validated fields, without request_data and response_data: those are in ``json``.
    event: CallEvent
    notes: dict[str, str] = field(default_factory=dict)
    #: request_data / response_data as the JSON text stored in their jsonb columns:
    #: checked here for size and content, and encoded at most once.
    json: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Rejection:
    reason: str
    event_id: str | None = None


def _describe(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "event"
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return f"{where}: {message}"


def _event_id(payload: dict[str, Any]) -> str | None:
    value = payload.get("id")
    return storable_text(value[:64]) if isinstance(value, str) else None


def storable_text(value: str) -> str:
    """Text Postgres can hold: no NUL, no lone surrogates (replaced by U+FFFD)."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    return repair_text(value)


def _clean_top_level(
    payload: dict[str, Any], notes: dict[str, str], *, surrogates: bool
) -> dict[str, Any]:
    """Clean text fields before validation, so that a NUL-only task counts as empty.

    Lone surrogates can only come through the fallback parser (orjson refuses them),
    so the costlier check for them runs only then.
    """
    cleaned: dict[str, Any] | None = None
    for key, value in payload.items():
        if not isinstance(value, str) or not (surrogates or "\x00" in value):
            continue
        fixed = storable_text(value)
        if fixed != value:
            cleaned = cleaned if cleaned is not None else dict(payload)
            cleaned[key] = fixed
            what = "NUL characters removed" if "\x00" in value else "invalid Unicode replaced"
            notes[key] = what
    return payload if cleaned is None else cleaned


def _without_non_finite(value: Any) -> tuple[Any, bool]:
    """NaN and infinities (which JSONB cannot hold) replaced by null; True if any were."""
    if isinstance(value, float) and not math.isfinite(value):
        return None, True
    if isinstance(value, dict):
        changed = False
        out = {}
        for key, item in value.items():
            out[key], hit = _without_non_finite(item)
            changed = changed or hit
        return (out, True) if changed else (value, False)
    if isinstance(value, list):
        items = [_without_non_finite(item) for item in value]
        if any(hit for _, hit in items):
            return [item for item, _ in items], True
    return value, False


def _clean_text(event: CallEvent, notes: dict[str, str]) -> None:
    """Long text is capped, and noted on the row (NULs went before validation)."""
    for name in _TEXT_FIELDS:
        value = event.get(name)
        if isinstance(value, str) and len(value) > MAX_TEXT:
            event[name] = value[:MAX_TEXT]  # type: ignore[literal-required]
            notes[name] = f"truncated to {MAX_TEXT} characters"


def _cache_write_total(event: CallEvent, notes: dict[str, str]) -> None:
    """cache_write_tokens counts every cache write, 1-hour ones included."""
    one_hour = event.get("cache_write_1h_tokens")
    written = event.get("cache_write_tokens")
    if one_hour is not None and (written or 0) < one_hour:
        if written is not None:
            notes["cache_write_tokens"] = (
                f"raised from {written} to the {one_hour} 1-hour cache writes"
            )
        event["cache_write_tokens"] = one_hour


def _finish_fields(event: CallEvent, notes: dict[str, str], raw: bytes | None) -> None:
    """What both paths do to a validated event: long text capped, 1-hour cache writes counted.

    ``raw``: the entry's JSON text, if there was one; shorter than the cap, no text is over it.
    """
    if raw is None or len(raw) > MAX_TEXT:
        _clean_text(event, notes)
    if "cache_write_1h_tokens" in event:
        _cache_write_total(event, notes)


def _encode_unusual(value: Any, notes: dict[str, str], name: str) -> bytes:
    """JSON text of a payload orjson cannot write: lone surrogates, or integers past 64 bits."""
    repaired = repair_unicode(value)
    if repaired != value:
        notes[name] = "invalid Unicode replaced"  # lone surrogates cannot be UTF-8
    try:
        return orjson.dumps(repaired)
    except (orjson.JSONEncodeError, TypeError):
        # An integer past 64 bits: jsonb holds it, and the standard library writes it exactly.
        return json.dumps(repaired, ensure_ascii=False, separators=(",", ":")).encode()


def _clean_json(event: CallEvent, notes: dict[str, str]) -> dict[str, str]:
    """JSONB cannot hold \\u0000 or lone surrogates; oversized payloads are dropped.

    Returns the JSON text of each payload kept, for its jsonb column; the event keeps
    none of them (a payload left out is noted, a payload kept is in the texts).
    """
    texts: dict[str, str] = {}
    for name in _JSON_FIELDS:
        value = event.pop(name, None)  # type: ignore[misc]
        if value is None:
            continue
        try:
            encoded = orjson.dumps(value)
        except (orjson.JSONEncodeError, TypeError):
            encoded = _encode_unusual(value, notes, name)
        if b"\\u0000" in encoded:
            encoded = encoded.replace(b"\\u0000", b"")
            notes[name] = "NUL characters removed"
        if len(encoded) > MAX_JSON_BYTES:
            notes[name] = f"dropped: {len(encoded)} bytes is over the {MAX_JSON_BYTES}-byte cap"
            continue
        texts[name] = encoded.decode()
    return texts


def parse_payload(
    payload: Any, *, lenient_json: bool = False, raw: bytes | None = None
) -> ParsedEvent | Rejection:
    """Validate one decoded event object.

    ``lenient_json``: the payload was decoded by the fallback parser, so it may hold
    NaN or infinities; in the JSON payload fields those become null, noted.
    ``raw``: the JSON text the payload was decoded from, when there was one. Checks
    it proves needless (no ``\\u0000`` escape, so no NUL; too short for any text to be
    over the cap) are skipped.
    """
    if not isinstance(payload, dict):
        return Rejection(f"event must be a JSON object, got {type(payload).__name__}")
    notes: dict[str, str] = {}
    maybe_nul = raw is None or b"\\u0000" in raw
    if maybe_nul or lenient_json:
        payload = _clean_top_level(payload, notes, surrogates=lenient_json)
    if lenient_json:
        for name in _JSON_FIELDS:
            if isinstance(payload.get(name), dict):
                value, changed = _without_non_finite(payload[name])
                if changed:
                    payload = {**payload, name: value}
                    notes[name] = "NaN or infinite numbers stored as null"
    try:
        event = EVENT.validate_python(payload)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        hard = [e for e in errors if not e["loc"] or e["loc"][0] not in SOFT_FIELDS]
        if hard:
            reason = "; ".join(_describe(e) for e in hard[:5])
            return Rejection(f"invalid event: {reason}", _event_id(payload))
        payload = dict(payload)
        for error in errors:
            name = str(error["loc"][0])
            payload.pop(name, None)
            notes[name] = f"dropped: {_describe(error)}"
        event = EVENT.validate_python(payload)
    encode_error = payload.get("_encode_error")
    if isinstance(encode_error, str):
        notes["producer"] = f"fields the producer could not encode were left out: {encode_error}"
    _finish_fields(event, notes, raw)
    texts = _clean_json(event, notes) if "request_data" in event or "response_data" in event else {}
    return ParsedEvent(event, notes, texts)


# The fast path. msgspec decodes and checks, in one compiled step, the shapes producers
# write: a JSON integer for a count, a string for a name, an RFC 3339 timestamp. A
# mismatch is no error here, only a reason to take the careful path, which decides.
# Each constraint is the careful path's own (CallEvent), or narrower.
_FastName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
_FastCount = Annotated[int, msgspec.Meta(ge=0, le=INT32_MAX)]
#: RFC 3339 with at most microseconds (pydantic truncates finer digits, msgspec rounds):
#: checked before ``datetime.fromisoformat``, which reads these exactly as pydantic does.
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)").fullmatch
_FastUnit = Annotated[float, msgspec.Meta(ge=0, le=1)]


class _FastFields(TypedDict, total=False):
    id: Required[UUID]
    timestamp: Required[str | int | float]
    task: Required[_FastName]
    model: Required[_FastName]
    job_id: int | str | None
    provider: _FastName | None
    input_tokens: _FastCount | None
    output_tokens: _FastCount | None
    cache_read_tokens: _FastCount | None
    cache_write_tokens: _FastCount | None
    cache_write_1h_tokens: _FastCount | None
    latency_ms: _FastCount | None
    cost: float | int | str | None
    action: Literal["use_ai_result", "fallback_to_rules"] | None
    image_id: Annotated[str, msgspec.Meta(max_length=MAX_KEY)] | int | None
    service: _FastName | None
    confidence_score: float | int | str | None
    confidence_breakdown: dict[str, _FastUnit] | None
    fallback_reason: str | None
    error_message: str | None
    # The JSON text as sent, stored as it is (jsonb parses it): not decoded, not re-encoded.
    request_data: msgspec.Raw
    response_data: msgspec.Raw


#: No value passes this type: a field of it sends its entry the careful way.
_CAREFUL_ONLY = Annotated[int, msgspec.Meta(ge=1, le=0)]
#: The fields, and the names that need the careful path: OpenTelemetry's (pydantic picks
#: one of a field's names) and the producer's note of fields it left out.
_FastEvent = TypedDict(
    "_FastEvent",
    {
        **get_type_hints(_FastFields, include_extras=True),  # type: ignore[misc]
        **dict.fromkeys([*chain.from_iterable(ALIASES.values()), "_encode_error"], _CAREFUL_ONLY),
    },
    total=False,
)
_FAST = msgspec.json.Decoder(_FastEvent)
#: Rare fields whose lax rules (numbers as text, floats as decimals) stay pydantic's.
_COST = TypeAdapter(Cost)
_SCORE = TypeAdapter(Score)


#: ``_job_ref`` of an integer or a string, remembered: a job's calls repeat its id.
#: (Typed: 1 and True are equal keys to a plain cache, and True is no job.)
_job_text = functools.lru_cache(maxsize=4096, typed=True)(_job_ref)


def _trimmed(value: str | None) -> bool:
    # Python strips every character pydantic's strip_whitespace does (and a few more).
    return value is None or value == value.strip()


def parse_fast(raw: bytes) -> ParsedEvent | None:
    """The entry validated in one compiled step, or None: then only the careful path decides.

    Returns exactly what :func:`parse_payload` returns for the same entry (the payload
    texts aside, which keep the producer's spelling), never a rejection.
    """
    # Any \u escape (a NUL, a lone surrogate, a control character) needs the careful
    # path's cleaning: msgspec would decode it, and never look inside the payloads.
    if b"\\u" in raw:
        return None
    try:
        event: Any = _FAST.decode(raw)
        if not (
            _trimmed(event["task"])
            and _trimmed(event["model"])
            and _trimmed(event.get("provider"))
            and _trimmed(event.get("service"))
        ):
            return None
        when = event["timestamp"]
        if type(when) is str:
            if not _RFC3339(when):
                return None
            event["timestamp"] = _plausible_time(datetime.fromisoformat(when))
        else:
            event["timestamp"] = _plausible_time(_epoch_seconds(when))
        if (job := event.get("job_id")) is not None:
            event["job_id"] = _job_text(job)
        if type(image := event.get("image_id")) is int:
            image = event["image_id"] = str(image)
            if len(image) > MAX_KEY:
                return None
        if (cost := event.get("cost")) is not None:
            event["cost"] = _COST.validate_python(cost)
        if (score := event.get("confidence_score")) is not None:
            event["confidence_score"] = _SCORE.validate_python(score)
    except Exception:  # msgspec's refusal, pydantic's, a validator's: the careful path decides
        return None
    notes: dict[str, str] = {}
    texts: dict[str, str] = {}
    for name in _JSON_FIELDS:
        payload = event.pop(name, None)
        if payload is None:
            continue
        text = bytes(payload)
        if text == b"null":
            continue
        if text[:1] != b"{" or len(text) > MAX_JSON_BYTES:
            return None
        texts[name] = text.decode()
    _finish_fields(event, notes, raw)
    return ParsedEvent(event, notes, texts)


def parse_entry(fields: dict[bytes, bytes]) -> ParsedEvent | Rejection:
    """Validate one raw stream entry as read by XREADGROUP."""
    raw = fields.get(EVENT_FIELD)
    if raw is None:
        names = ", ".join(sorted(k.decode("utf-8", "replace") for k in fields)) or "none"
        return Rejection(f"stream entry has no {EVENT_FIELD.decode()!r} field (fields: {names})")
    fast = parse_fast(raw)
    if fast is not None:
        return fast
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        error = exc
    else:
        if isinstance(payload, dict) and float in (
            type(payload.get("job_id")),
            type(payload.get("image_id")),
        ):
            # orjson reads an integer past 64 bits as a float, losing digits; as a job
            # key or an image id its digits are the point: read it exactly.
            payload = json.loads(raw)
        return parse_payload(payload, raw=raw)
    try:
        # Python's own json module (and so many producers) writes NaN and Infinity, and
        # lone surrogates are legal JSON escapes: accept them here, clean them per field.
        payload = json.loads(raw)
    except (ValueError, RecursionError):
        return Rejection(f"event is not valid JSON: {error}")
    return parse_payload(payload, lenient_json=True)

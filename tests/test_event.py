"""What a worker accepts, cleans or rejects — checked entry by entry."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producer.constants import EVENT_FIELD
from worker.event import ParsedEvent, Rejection, parse_entry, parse_fast, parse_payload
from worker.store import COLUMNS, COPY_TYPES


def event(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "timestamp": datetime.now(UTC).isoformat(),
        "task": "material_classification",
        "model": "claude-3-5-haiku-20241022",
        "input_tokens": 812,
        "output_tokens": 64,
        "latency_ms": 930,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def accepted(payload: dict[str, Any]) -> ParsedEvent:
    result = parse_payload(payload)
    assert isinstance(result, ParsedEvent), getattr(result, "reason", result)
    return result


def rejected(payload: Any) -> str:
    result = parse_payload(payload)
    assert isinstance(result, Rejection), result
    return result.reason


def test_valid_event_round_trips() -> None:
    parsed = accepted(event(job_id=str(uuid.uuid4()), provider="anthropic"))
    assert parsed.event["input_tokens"] == 812
    assert parsed.event["provider"] == "anthropic"
    assert parsed.notes == {}


def test_epoch_seconds_are_accepted_as_timestamps() -> None:
    parsed = accepted(event(timestamp=1_750_000_000.5))
    assert parsed.event["timestamp"] == datetime.fromtimestamp(1_750_000_000.5, UTC)


def test_opentelemetry_names_are_aliases() -> None:
    payload = {
        "id": str(uuid.uuid4()),
        "timestamp": datetime.now(UTC).isoformat(),
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.provider.name": "openai",
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 30,
    }
    parsed = accepted(payload)
    assert (parsed.event["task"], parsed.event["model"], parsed.event["provider"]) == (
        "chat",
        "gpt-4o",
        "openai",
    )
    assert (parsed.event["input_tokens"], parsed.event["output_tokens"]) == (120, 30)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"task": ...}, "task"),
        ({"model": ""}, "model"),
        ({"input_tokens": -5}, "input_tokens"),
        ({"output_tokens": 2**40}, "output_tokens"),
        ({"id": "not-a-uuid"}, "id"),
        ({"timestamp": "1970-01-01T00:00:00Z"}, "before 2015"),
        ({"timestamp": (datetime.now(UTC) + timedelta(days=30)).isoformat()}, "future"),
        ({"action": "retry_later"}, "action"),
        ({"cost": -0.01}, "cost"),
        ({"input_tokens": "lots"}, "input_tokens"),
    ],
)
def test_bad_cost_bearing_fields_reject_with_a_reason(
    overrides: dict[str, Any], fragment: str
) -> None:
    reason = rejected(event(**overrides))
    assert fragment in reason


def test_timestamps_inside_the_bounds_keep_their_moment_whatever_their_offset() -> None:
    soon = datetime.now(UTC) + timedelta(hours=23)  # a producer clock running ahead
    assert accepted(event(timestamp=soon.isoformat())).event["timestamp"] == soon
    noon = datetime(2026, 6, 1, 12, tzinfo=UTC)
    assert accepted(event(timestamp="2026-06-01T17:30:00+05:30")).event["timestamp"] == noon
    naive = accepted(event(timestamp="2026-06-01T12:00:00")).event["timestamp"]
    assert naive == noon  # no offset: UTC
    assert accepted(event(timestamp=1_780_315_200)).event["timestamp"] == naive  # epoch s
    # Just before 2015 in UTC, though 2015 already at its own offset.
    assert "before 2015" in rejected(event(timestamp="2015-01-01T00:30:00+01:00"))


def test_not_an_object_or_not_json_is_rejected() -> None:
    assert "JSON object" in rejected([1, 2, 3])
    result = parse_entry({EVENT_FIELD: b"{not json"})
    assert isinstance(result, Rejection) and "not valid JSON" in result.reason
    result = parse_entry({b"other": b"x"})
    assert isinstance(result, Rejection) and "no 'e' field" in result.reason


def test_a_bad_soft_field_is_dropped_and_noted_not_fatal() -> None:
    parsed = accepted(
        event(confidence_breakdown={"model_confidence": 7}, request_data="not an object")
    )
    assert parsed.event.get("confidence_breakdown") is None
    assert parsed.event.get("request_data") is None
    assert parsed.event["input_tokens"] == 812  # the cost record survives
    assert set(parsed.notes) == {"confidence_breakdown", "request_data"}
    # The note names the bad component and what was wrong with it.
    assert parsed.notes["confidence_breakdown"] == (
        "dropped: confidence_breakdown.model_confidence: Input should be less than or equal to 1"
    )
    for bad in (-0.1, float("nan"), "high"):
        noted = accepted(event(confidence_breakdown={"completeness": bad})).notes
        assert noted["confidence_breakdown"].startswith(
            "dropped: confidence_breakdown.completeness"
        )


def test_nul_characters_are_cleaned_and_noted() -> None:
    parsed = accepted(event(error_message="bad\x00byte", response_data={"text": "a\x00b"}))
    assert parsed.event["error_message"] == "badbyte"
    assert json.loads(parsed.json["response_data"]) == {"text": "ab"}
    assert "NUL" in parsed.notes["error_message"] and "NUL" in parsed.notes["response_data"]


def test_rejection_keeps_the_event_id_when_there_is_one() -> None:
    payload = event(input_tokens=-1)
    result = parse_payload(payload)
    assert isinstance(result, Rejection) and result.event_id == payload["id"]


def test_raw_entry_from_the_wire() -> None:
    payload = orjson.dumps(event())
    assert isinstance(parse_entry({EVENT_FIELD: payload, b"v": b"1"}), ParsedEvent)


@pytest.mark.parametrize("name", ["job_id", "image_id"])
def test_an_integer_key_past_64_bits_keeps_every_digit(name: str) -> None:
    huge = -9223372036854775809  # one past the smallest 64-bit integer
    raw = (
        b'{"id": "2b2a16ed-8015-4d9a-82de-ab3c169827e0", "timestamp": "2026-01-02T00:00:00Z",'
        b' "task": "t", "model": "m", "%s": %d}' % (name.encode(), huge)
    )
    parsed = parse_entry({EVENT_FIELD: raw})
    assert isinstance(parsed, ParsedEvent) and not parsed.notes
    assert str(parsed.event[name]) == str(huge)  # type: ignore[literal-required]


@pytest.mark.parametrize(
    "why_read_exactly",
    ['"job_id": 18446744073709551617', '"response_data": {"x": NaN}'],
    ids=["a job key past 64 bits", "NaN elsewhere"],
)
def test_an_integer_past_64_bits_in_a_payload_is_stored_exactly(why_read_exactly: str) -> None:
    # Either reason makes the worker read the entry with the standard library, which
    # keeps every digit of every integer: orjson then cannot write the payload back.
    raw = (
        b'{"id": "2b2a16ed-8015-4d9a-82de-ab3c169827e0", "timestamp": "2026-01-02T00:00:00Z",'
        b' "task": "t", "model": "m", "request_data": {"n": 18446744073709551617}, %s}'
        % why_read_exactly.encode()
    )
    parsed = parse_entry({EVENT_FIELD: raw})
    assert isinstance(parsed, ParsedEvent)
    assert json.loads(parsed.json["request_data"]) == {"n": 18446744073709551617}
    assert "request_data" not in parsed.notes


# Values that each field may be sent with: valid ones, and ones validation must turn
# down or change (for the strict fields, a rejection; for the soft ones, a note).
# Integers in payloads stay within 64 bits: past that, orjson (the wire's fast reader)
# reads them as floats, the test above covers the case where they are read exactly.
_VALUES: dict[str, Any] = {
    "id": st.one_of(st.uuids().map(str), st.just("not-a-uuid"), st.integers()),
    "timestamp": st.one_of(
        st.just("2026-01-02T03:04:05.678Z"),
        st.just("2026-01-02 03:04:05+02:00"),
        st.integers(1_500_000_000, 1_900_000_000),
        st.floats(1.5e9, 1.9e9),
        st.just("soon"),
        st.just(0),
    ),
    "task": st.one_of(st.text(max_size=30), st.just("  padded  "), st.integers()),
    "gen_ai.request.model": st.text(min_size=1, max_size=30),
    "model": st.one_of(st.text(max_size=30), st.none()),
    "job_id": st.one_of(
        st.uuids().map(str),
        st.uuids().map(lambda u: str(u).upper()),
        st.text(max_size=20),
        st.integers(-(2**70), 2**70),
        st.booleans(),
        st.floats(allow_nan=False),
    ),
    "input_tokens": st.one_of(
        st.integers(-5, 2**33), st.booleans(), st.just("12"), st.just(3.0), st.just(2.5)
    ),
    "gen_ai.usage.output_tokens": st.integers(-1, 10_000),
    "cache_write_tokens": st.integers(0, 100),
    "cache_write_1h_tokens": st.integers(0, 200),
    "cost": st.one_of(
        st.floats(-1, 2e6, allow_nan=False, allow_infinity=False), st.just("0.25"), st.booleans()
    ),
    "action": st.sampled_from(["use_ai_result", "fallback_to_rules", "retry", None]),
    "image_id": st.one_of(st.text(max_size=20), st.integers(), st.just("x" * 600)),
    "confidence_score": st.one_of(st.floats(-0.5, 1.5, allow_nan=False), st.just("high")),
    "confidence_breakdown": st.one_of(
        st.dictionaries(st.text(max_size=8), st.floats(-0.5, 1.5, allow_nan=False), max_size=3),
        st.just([1, 2]),
    ),
    "error_message": st.one_of(st.text(max_size=40), st.just("e" * 10_050)),
    "request_data": st.one_of(
        st.dictionaries(
            st.text(max_size=8),
            st.recursive(
                st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=10),
                lambda inner: st.lists(inner, max_size=3),
                max_leaves=5,
            ),
            max_size=4,
        ),
        st.just("not an object"),
    ),
    "extra": st.text(max_size=10),
    "_encode_error": st.text(max_size=10),
}


#: A valid event, which some of _VALUES then override.
_VALID = st.fixed_dictionaries(
    {
        "id": st.uuids().map(str),
        "timestamp": st.sampled_from(["2026-01-02T03:04:05.678Z", "2026-03-04T05:06:07+01:00"]),
        "task": st.text(min_size=1, max_size=30).filter(str.strip),
        "model": st.text(min_size=1, max_size=30).filter(str.strip),
    }
)
_EVENTS = st.builds(
    lambda valid, more: {**valid, **more}, _VALID, st.fixed_dictionaries({}, optional=_VALUES)
)


def _decoded(texts: dict[str, str]) -> dict[str, Any]:
    return {name: json.loads(text) for name, text in texts.items()}


def assert_same_result(one: ParsedEvent, other: ParsedEvent) -> None:
    """The same event and notes, and the same values stored in the jsonb columns."""
    assert (one.event, one.notes) == (other.event, other.notes)
    assert _decoded(one.json) == _decoded(other.json)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_EVENTS)
def test_an_entry_from_the_wire_is_validated_as_its_decoded_object(
    payload: dict[str, Any],
) -> None:
    """The checks skipped for wire entries (NULs, long text) change nothing they skip."""
    raw = json.dumps(payload).encode()
    wire = parse_entry({EVENT_FIELD: raw})
    careful = parse_payload(json.loads(raw))
    assert type(wire) is type(careful)
    if isinstance(careful, Rejection):
        assert wire == careful
        return
    assert isinstance(wire, ParsedEvent)
    assert_same_result(wire, careful)


def _as_sent(payload: dict[str, Any], how: str) -> bytes:
    if how == "orjson":  # the producers' spelling: compact, UTF-8, no escapes
        try:
            return orjson.dumps(payload)
        except TypeError:  # an integer past 64 bits
            how = "json, UTF-8"
    return json.dumps(payload, ensure_ascii=how == "json, ASCII").encode()


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_EVENTS, st.sampled_from(["orjson", "json, ASCII", "json, UTF-8"]))
def test_the_fast_path_gives_what_the_careful_path_gives(payload: dict[str, Any], how: str) -> None:
    """parse_fast takes an entry only when it would be accepted, and then gives the same row."""
    raw = _as_sent(payload, how)
    fast = parse_fast(raw)
    careful = parse_payload(json.loads(raw))
    if fast is None:
        return
    assert isinstance(careful, ParsedEvent), careful
    assert_same_result(fast, careful)


_NAMES = st.from_regex(r"[a-zé漢0-9][a-zé漢0-9._ -]{0,28}[a-z0-9]", fullmatch=True)
#: Events as producers write them: well-typed fields, in the shapes the producers emit.
_PRODUCED = st.fixed_dictionaries(
    {
        "id": st.uuids().map(str),
        "timestamp": st.sampled_from(
            ["2026-01-02T03:04:05Z", "2026-01-02T03:04:05.678Z", "2026-01-02T03:04:05.123456+00:00"]
        ),
        "task": _NAMES,
        "model": _NAMES,
    },
    optional={
        "provider": _NAMES,
        "input_tokens": st.integers(0, 10_000),
        "output_tokens": st.integers(0, 10_000),
        "latency_ms": st.integers(0, 100_000),
        "job_id": st.one_of(st.uuids().map(str), _NAMES, st.integers(-(2**63), 2**63 - 1)),
        "image_id": st.one_of(_NAMES, st.integers(0, 10**9)),
        "confidence_breakdown": st.dictionaries(_NAMES, st.floats(0, 1)),
        "request_data": st.dictionaries(
            _NAMES, st.integers(-(2**63), 2**63 - 1) | _NAMES | st.floats(0, 1e6), max_size=3
        ),
        "error_message": _NAMES,
    },
)


@settings(max_examples=200, deadline=None)
@given(_PRODUCED)
def test_what_producers_write_takes_the_fast_path(payload: dict[str, Any]) -> None:
    """Compact UTF-8 JSON of well-typed fields: one step, with the careful path's result."""
    fast = parse_fast(orjson.dumps(payload))
    assert fast is not None
    careful = parse_payload(payload)
    assert isinstance(careful, ParsedEvent)
    assert_same_result(fast, careful)


@pytest.mark.parametrize(
    "column", [c for c, t in zip(COLUMNS, COPY_TYPES, strict=True) if t == "int4"]
)
def test_every_int4_column_is_bounded_by_validation_on_both_paths(column: str) -> None:
    """The binary COPY writes ints into 4 bytes unchecked: validation must stop what won't fit."""
    assert accepted(event(**{column: 2**31 - 1}))  # the largest that fits is a valid count
    too_big = event(**{column: 2**31})
    assert column in rejected(too_big)
    assert parse_fast(orjson.dumps(too_big)) is None  # the fast path leaves it to the careful one

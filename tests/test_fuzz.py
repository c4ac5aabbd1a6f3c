"""A fuzz of raw stream entries against a real worker: bad input never stops the pipeline.

Hypothesis writes entries straight into the stream, as any producer could: valid
events, events with one field broken in a known way, and garbage. Each entry is
built together with what must become of it, decided here and not by asking the
worker's validator (which would make the test unable to fail):

- a valid event is a row, with the values it was sent with;
- a bad *descriptive* field (image_id, confidence_score, confidence_breakdown,
  fallback_reason, error_message, request_data, response_data) is dropped or
  cleaned, the row is still stored, and its ``ingest_notes`` names the field;
- anything else bad is in ``ai_call_rejects`` and the dead-letter stream, with
  the raw bytes and a reason that names the field (or says it is not valid JSON).

A worker then runs in burst mode; it must drain the stream without one failed
iteration (its backoff is never asked for a delay).
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

import psycopg
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.rows import dict_row

from ailedger.settings import Settings
from producer.backoff import Backoff
from producer.constants import EVENT_FIELD, VERSION_FIELD, dead_letter_stream
from worker.consumer import Worker

EXAMPLES = int(os.environ.get("AILEDGER_FUZZ_EXAMPLES", "40"))
INT32_MAX = 2**31 - 1
MAX_TEXT = 10_000
MAX_JSON_BYTES = 256 * 1024

# -- what an entry is, and what must become of it -------------------------------------


@dataclass(frozen=True)
class Raw:
    """JSON text put into the payload as is: ``NaN``, ``1e999``, ``"\\ud800"``."""

    text: str


NAN, HUGE, NEG_INF = Raw("NaN"), Raw("1e999"), Raw("-Infinity")

#: Column expectations beyond an exact value.
PRESENT, DROPPED = object(), object()


@dataclass(frozen=True)
class Stored:
    event_id: str
    notes: frozenset[str] = frozenset()  # fields the row's ingest_notes must name
    columns: dict[str, Any] = field(default_factory=dict)
    other_notes: bool = False  # whether notes beyond those are fine


@dataclass(frozen=True)
class Rejected:
    says: tuple[str, ...]  # the reason names one of these fields, or contains the phrase
    event_id: str | None = None  # must not be a row


@dataclass(frozen=True)
class Case:
    fields: dict[bytes, bytes]
    expect: Stored | Rejected
    label: str


def encode(value: Any) -> bytes:
    raws: dict[str, str] = {}

    def swap(v: Any) -> Any:
        if isinstance(v, Raw):
            token = f"raw-{uuid.uuid4().hex}"
            raws[json.dumps(token)] = v.text
            return token
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        if isinstance(v, list):
            return [swap(x) for x in v]
        return v

    text = json.dumps(swap(value), ensure_ascii=False, allow_nan=False)
    for token, raw in raws.items():
        text = text.replace(token, raw)
    return text.encode()


def entry(event: dict[str, Any]) -> dict[bytes, bytes]:
    return {EVENT_FIELD: encode(event), VERSION_FIELD: b"1"}


def clean_event(**fields: Any) -> dict[str, Any]:
    event = {
        "id": str(uuid.uuid4()),
        "timestamp": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "task": "material_classification",
        "model": "claude-3-5-haiku-20241022",
        "input_tokens": 812,
        "output_tokens": 64,
        "latency_ms": 930,
    }
    event.update(fields)
    return event


def strict_broken(name: str, value: Any, base: dict[str, Any] | None = None) -> Case:
    """An event whose cost-deciding field ``name`` is bad (``...`` removes it): rejected."""
    event = dict(base or clean_event())
    if value is ...:
        del event[name]
    else:
        event[name] = value
    # NaN, infinities and lone surrogates are not strict JSON: either reason will do.
    lenient_json = isinstance(value, Raw) and not value.text.isdigit()
    says = (name, "not valid JSON") if lenient_json else (name,)
    event_id = event["id"] if name != "id" else None
    return Case(entry(event), Rejected(says, event_id), f"{name}={value!r}"[:200])


def soft_broken(name: str, value: Any, base: dict[str, Any] | None = None) -> Case:
    """An event with a bad descriptive field: stored, the field dropped or cleaned, noted."""
    event = dict(base or clean_event())
    event[name] = value
    column = expected_column(name, value)
    columns = {} if column is None else {name: column}
    label = f"{name}~{value!r}"[:200]
    return Case(entry(event), Stored(event["id"], frozenset({name}), columns), label)


def expected_column(name: str, value: Any) -> Any:
    """What the row keeps of a bad descriptive field; None where dropping and cleaning both do.

    Text keeps its meaning once NUL characters or lone surrogates are replaced, and
    once capped; a number or a list where text belongs does not, nor an oversized
    payload. Where a payload holds NaN, dropping it or cleaning it are both fine.
    """
    if name in ("fallback_reason", "error_message"):
        if isinstance(value, str):
            return value.replace("\x00", "")[:MAX_TEXT]
        if isinstance(value, Raw):
            return PRESENT
        # A dropped fallback_reason is derived again when the worker decides the action.
        return DROPPED if name == "error_message" else None
    if name in ("request_data", "response_data") and isinstance(value, dict):
        text = encode(value).decode()
        if len(text) > MAX_JSON_BYTES:
            return DROPPED
        return None if NAN.text in text or HUGE.text in text else PRESENT
    if name == "confidence_score":
        return None  # dropped, then computed from the breakdown
    return DROPPED


# -- strategies --------------------------------------------------------------------------

SQLISH = [
    "'; DROP TABLE ai_call_logs; --",
    "Robert'); DELETE FROM ai_call_rejects;--",
    "\\.",  # COPY's end-of-data marker
    "\\N",  # COPY's NULL
    "a\tb\nc\\d",
    '"quoted", $$dollar$$',
    "%s %(x)s {0}",
    "NULL",
]
MODELS = [
    "claude-3-5-sonnet-20241022",
    "claude-3-5-haiku-20241022",
    "gpt-4o",
    "text-embedding-3-small",
    "meta-llama/Llama-4-Scout-17B-16E-Instruct",
    "clip-vit-base-patch32",
]
no_nul = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
names = st.one_of(
    st.sampled_from(SQLISH),
    st.text(no_nul, min_size=1, max_size=60).map(str.strip).filter(bool),
)
text = st.one_of(st.sampled_from(SQLISH), st.text(no_nul, max_size=300))


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4)


# Floats stay within ±1e15: beyond, jsonb gives them back as integers of another value.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(-1e15, 1e15, allow_nan=False)
    | text,
    _containers,
    max_leaves=12,
)
json_objects = st.dictionaries(text, json_values, max_size=5)
timestamps = st.datetimes(
    min_value=datetime(2015, 1, 2), max_value=datetime.now() - timedelta(hours=1)
).map(lambda d: d.replace(tzinfo=UTC))
counts = st.integers(0, 10_000_000) | st.sampled_from([0, INT32_MAX])


@st.composite
def valid_events(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A valid event and the columns its row must hold."""
    moment = draw(timestamps)
    stamp: Any = draw(st.sampled_from([moment.isoformat(), moment.timestamp()]))
    if isinstance(stamp, float):
        moment = datetime.fromtimestamp(stamp, UTC)
    event: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "timestamp": stamp,
        "task": draw(names),
        "model": draw(st.sampled_from(MODELS) | names),
    }
    optional = {
        # Any job key: a UUID, an integer, a string (stored as its UUID, the key beside it).
        "job_id": st.uuids().map(str) | st.none() | st.integers() | names,
        "provider": st.sampled_from(["anthropic", "openai", "together"]) | names,
        "input_tokens": counts,
        "output_tokens": counts,
        "cache_read_tokens": counts,
        "latency_ms": counts,
        "cost": st.decimals(0, 99_999, places=8).map(lambda d: Raw(format(d, "f"))),
        "action": st.sampled_from(["use_ai_result", "fallback_to_rules"]),
        "image_id": names,
        "confidence_breakdown": st.dictionaries(
            st.sampled_from(["model_confidence", "completeness", "consistency", "validation"]),
            st.floats(0, 1),
        ),
        "fallback_reason": text,
        "error_message": text,
        "request_data": json_objects,
        "response_data": json_objects,
        "an_unknown_field": json_values,
    }
    for name in draw(st.sets(st.sampled_from(sorted(optional)))):
        event[name] = draw(optional[name])
    columns = {"timestamp": moment, "task": event["task"], "model": event["model"]}
    for name in ("input_tokens", "output_tokens", "latency_ms", "action", "error_message"):
        if name in event:
            columns[name] = event[name]
    if isinstance(event.get("job_id"), int):
        columns["job_key"] = str(event["job_id"])
    for name in ("request_data", "response_data"):
        if name in event:
            columns[name] = event[name]
    if "cost" in event:
        columns["cost"] = Decimal(event["cost"].text)
    return event, columns


NAME_ERRORS = [..., None, "", "   ", 42, True, ["x"], {"a": 1}, "x" * 201, "\x00", " \x00 "]
COUNT_ERRORS = [-1, -(2**40), 2**31, 2**63, Raw("1" * 30), 1.5, "many", [], {}, True, NAN, HUGE]
STRICT = {
    "id": [..., None, "not-a-uuid", 12345, [], {}, "", SQLISH[0], Raw('"\\ud800"')],
    "timestamp": [
        ..., None, "0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "2014-12-31T23:59:59Z",
        "9999-12-31T23:59:59Z", (datetime.now(UTC) + timedelta(days=3)).isoformat(),
        0, -1, -1e12, 1.7e12, "yesterday", True, [], NAN, HUGE, NEG_INF,
    ],
    "task": NAME_ERRORS,
    "model": NAME_ERRORS,
    "provider": ["", "  ", 5, [], "x" * 201],
    "input_tokens": COUNT_ERRORS,
    "output_tokens": COUNT_ERRORS,
    "cache_write_tokens": COUNT_ERRORS,
    "latency_ms": COUNT_ERRORS,
    "cost": [-0.01, 1e6, 1e12, "abc", [], {}, True, NAN, Raw("Infinity"), HUGE, "NaN", "-1"],
    "action": ["maybe", "USE_AI_RESULT", "", 1, [], True, "use_ai_result'; --"],
}  # fmt: skip
BIG = "x" * 300_000
SOFT = {
    "job_id": [[], {}, "", "   ", True, 7.5, "x" * 501],
    "image_id": [[], {}, True, 1.5, "x" * 501],
    "confidence_score": [-0.5, 1.5, "high", [], True, NAN, HUGE, "NaN"],
    "confidence_breakdown": [
        [], "x", 5, {"model_confidence": 1.5}, {"completeness": -0.1},
        {"validation": "good"}, {"consistency": NAN}, {"model_confidence": HUGE},
    ],
    "fallback_reason": [42, [], {}, True, "x" * 20_000, "a\x00b", Raw('"bad \\ud800 byte"')],
    "error_message": [42, [], {}, True, "x" * 20_000, "a\x00b", Raw('"bad \\udc80 byte"')],
    "request_data": [[], "str", 5, True, {"blob": BIG}, {"a": "\x00"}, {"t": Raw('"\\ud800"')}],
    "response_data": [[], "str", 5, True, {"a": "b\x00"}, {"n": NAN}, {"t": Raw('"\\udfff"')}],
}  # fmt: skip
GARBAGE = [
    (b"null", ("JSON object",)),
    (b"[]", ("JSON object",)),
    (b"42", ("JSON object",)),
    (b'"an event"', ("JSON object",)),
    (b"{}", ("id", "task", "model", "timestamp")),
    (b"", ("not valid JSON",)),
]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(["valid", "valid", "strict", "soft", "garbage"]))
    event, columns = draw(valid_events())
    if kind == "valid":
        return Case(entry(event), Stored(event["id"], columns=columns), "valid")
    if kind == "strict":
        name = draw(st.sampled_from(sorted(STRICT)))
        return strict_broken(name, draw(st.sampled_from(STRICT[name])), event)
    if kind == "soft":
        name = draw(st.sampled_from(sorted(SOFT)))
        return soft_broken(name, draw(st.sampled_from(SOFT[name])), event)
    shape = draw(st.sampled_from(["random", "truncated", "listed", "no e field"]))
    if shape == "random":  # "<" can start no JSON text
        raw = b"<" + draw(st.binary(max_size=200))
        return Case({EVENT_FIELD: raw}, Rejected(("not valid JSON",)), "random bytes")
    if shape == "truncated":
        raw = encode(event)
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
        return Case({EVENT_FIELD: raw}, Rejected(("not valid JSON",)), "truncated")
    if shape == "no e field":
        fields = {b"event": encode(event)}
        return Case(fields, Rejected(("'e' field",), event["id"]), "no e field")
    raw, says = draw(st.sampled_from(GARBAGE))
    return Case({EVENT_FIELD: raw}, Rejected(says), f"garbage {raw!r}")


# -- running and checking ----------------------------------------------------------------


class CountingBackoff(Backoff):
    """The worker's backoff, counting how often an iteration failed and had to wait."""

    failures: ClassVar[int] = 0

    def next_delay(self) -> float:
        CountingBackoff.failures += 1
        return min(super().next_delay(), 0.05)


def run_worker(settings: Settings, entries: int) -> None:
    """A burst worker on the stream; fails if it crashes, loops or skips an entry."""
    CountingBackoff.failures = 0
    worker = Worker(settings, burst=True, backoff=CountingBackoff)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as exc:  # the test must see it, not the thread's excepthook
            errors.append(exc)

    thread = threading.Thread(target=run, name="fuzz-worker")
    thread.start()
    thread.join(60)
    if thread.is_alive():
        worker.stop()
        thread.join(30)
        pytest.fail("the burst worker did not drain the stream within 60 s")
    assert not errors, f"the worker raised: {errors[0]!r}"
    assert CountingBackoff.failures == 0, "a worker iteration failed and backed off"
    assert worker.counters.entries == entries


def _names(reason: str, field: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(field)}(?!\w)", reason) is not None


def check(case: Case, row: dict[str, Any] | None, reject: Any, dead: Any) -> None:
    expect, label = case.expect, case.label
    if isinstance(expect, Stored):
        assert reject is None, f"{label}: a valid event was rejected: {reject['reason']}"
        assert row is not None, f"{label}: event {expect.event_id} was not stored"
        notes = row["ingest_notes"] or {}
        for name in expect.notes:
            assert notes.get(name), f"{label}: no note for {name!r}: {notes}"
        if not expect.notes and not expect.other_notes:
            assert row["ingest_notes"] is None, f"{label}: unexpected notes {notes}"
        for column, value in expect.columns.items():
            if value is PRESENT:
                assert row[column] is not None, f"{label}: {column} was lost"
            elif value is DROPPED:
                assert row[column] is None, f"{label}: {column} kept {row[column]!r}"
            else:
                assert row[column] == value, f"{label}: {column}"
        return
    assert reject is not None, f"{label}: a bad entry is not in ai_call_rejects"
    assert row is None, f"{label}: a rejected event was also stored"
    reason = reject["reason"]
    assert any(
        phrase.lower() in reason.lower() if " " in phrase else _names(reason, phrase)
        for phrase in expect.says
    ), f"{label}: reason {reason!r} says none of {expect.says}"
    assert bytes(reject["raw"]) == case.fields.get(EVENT_FIELD, bytes(reject["raw"]))
    assert dead is not None, f"{label}: not in the dead-letter stream"
    assert dead[b"reason"].decode() == reason


def run_cases(
    batch: list[Case], settings: Settings, client: redis.Redis, conn: psycopg.Connection[Any]
) -> None:
    pipe = client.pipeline(transaction=False)
    for case in batch:
        pipe.xadd(settings.stream, case.fields)
    stream_ids = [sid.decode() for sid in pipe.execute()]
    run_worker(settings, len(batch))

    event_ids = [c.expect.event_id for c in batch if c.expect.event_id]
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM ai_call_logs WHERE id::text = ANY(%s)", (event_ids,))
        rows = {str(r["id"]): r for r in cur.fetchall()}
        cur.execute("SELECT * FROM ai_call_rejects WHERE stream_id = ANY(%s)", (stream_ids,))
        rejects = {r["stream_id"]: r for r in cur.fetchall()}
    dead = {
        fields[b"stream_id"].decode(): fields
        for _, fields in client.xrange(dead_letter_stream(settings.stream))
    }
    for case, stream_id in zip(batch, stream_ids, strict=True):
        event_id = case.expect.event_id
        row = rows.get(event_id) if event_id else None
        check(case, row, rejects.get(stream_id), dead.get(stream_id))


@pytest.mark.slow
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@given(batch=st.lists(cases(), min_size=1, max_size=12))
def test_fuzzed_entries_are_stored_or_dead_lettered_and_no_worker_crashes(
    batch: list[Case], settings: Settings, redis_client: redis.Redis, db: Any
) -> None:
    run_cases(batch, settings, redis_client, db)


# Policies the fuzz checks, each once by name, so that a failure says which one broke.
_PRICEY = clean_event(model="o1-pro", input_tokens=INT32_MAX, output_tokens=INT32_MAX)
NAMED = {
    "NaN in confidence_breakdown": soft_broken("confidence_breakdown", {"validation": NAN}),
    "1e999 as confidence_score": soft_broken("confidence_score", HUGE),
    "lone surrogate in error_message": soft_broken("error_message", Raw('"bad \\ud800"')),
    "lone surrogate in response_data": soft_broken("response_data", {"t": Raw('"\\udc80"')}),
    "a task made only of NUL": strict_broken("task", "\x00"),
    "true as input_tokens": strict_broken("input_tokens", True),
    # $1.6M for one call means broken token counts: kept as a reject that says so.
    "o1-pro at the largest token counts": Case(
        entry(_PRICEY), Rejected(("not plausible",)), "o1-pro at 2**31-1 tokens"
    ),
}


@pytest.mark.parametrize("name", NAMED)
def test_named_entry(name: str, settings: Settings, redis_client: redis.Redis, db: Any) -> None:
    run_cases([NAMED[name]], settings, redis_client, db)

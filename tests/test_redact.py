"""Payload redaction: secrets never reach the ledger, payloads fit their cap, nothing raises."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import uuid
from decimal import Decimal
from typing import Any

import anthropic.types
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producer.redact import REDACTED, redact, redact_text

OPENAI_KEY = "sk-proj-4fTq9ZxW2mLk8RvB1nYcH7dJ3sPa6eUo0gKi5tQw"
ANTHROPIC_KEY = "sk-ant-api03-Zx8Qm2Lk7RvB1nYcH7dJ3sPa6eUo0gKi5tQwXy9-AbCdEfAA"
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)


def encoded(value: object) -> bytes:
    return orjson.dumps(value)


def test_values_under_secret_keys_are_redacted_whatever_their_spelling() -> None:
    payload = {
        "api_key": "k-111111",
        "apiKey": "k-222222",
        "X-API-Key": "k-333333",
        "Authorization": "Token k-444444",
        "password": "hunter2-555555",
        "client_secret": "k-666666",
        "access_token": "k-777777",
        "refresh-token": "k-888888",
        "Cookie": "session=k-999999",
        "Set-Cookie": "sid=k-000000; HttpOnly",
        "credentials": {"user": "svc", "pass": "k-121212"},
        "token": "k-131313",
    }

    out = redact(payload)

    assert isinstance(out, dict)
    assert set(out) == set(payload)
    assert all(value == REDACTED for value in out.values())
    assert b"k-" not in encoded(out)


def test_token_counts_and_request_settings_survive() -> None:
    payload = {
        "model": "claude-3-5-haiku-20241022",
        "max_tokens": 1024,
        "input_tokens": 812,
        "output_tokens": 64,
        "cache_read_tokens": 0,
        "max_completion_tokens": 500,
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
        "tokens": ["oak", "veneer"],
        "token_count": 2,
        "pad_token": "<pad>",
        "logprobs": {"content": [{"token": "oak", "logprob": -0.01}]},
    }

    assert redact(payload) == payload


def test_credentials_inside_strings_are_redacted() -> None:
    payload = {
        "messages": [
            {"role": "user", "content": f"use {OPENAI_KEY} to call the API"},
            {"role": "user", "content": f"the anthropic key is {ANTHROPIC_KEY}."},
        ],
        "headers": [("Authorization", f"Bearer {JWT}"), ("X-Trace", "abc")],
        "error": f"AccessDenied for {AWS_KEY_ID} while reading s3://bucket/x.pdf",
        "dsn": "postgresql://ailedger:s3cr3t-pw@db.internal:5432/ledger",
        "callback": "https://hooks.example.com/run?api_key=zz-topsecret-zz&job=42",
        "raw_body": '{"model": "gpt-4o", "password": "pw-in-json-text", "max_tokens": 5}',
        "note": "bearer",
    }

    out = redact(payload)
    text = encoded(out).decode()

    assert isinstance(out, dict)
    for secret in (OPENAI_KEY, ANTHROPIC_KEY, AWS_KEY_ID, JWT, "s3cr3t-pw", "zz-topsecret-zz"):
        assert secret not in text
    assert "pw-in-json-text" not in text
    assert out["messages"][0]["content"] == f"use {REDACTED} to call the API"
    assert out["headers"][1] == ["X-Trace", "abc"]
    assert "db.internal:5432/ledger" in out["dsn"]
    assert "job=42" in out["callback"]
    assert '"max_tokens": 5' in out["raw_body"]
    assert out["note"] == "bearer"


@pytest.mark.parametrize(
    "header", ["Bearer xyz", "bearer abc.def", "Basic dXNlcjpwYXNzd29yZA==", "Basic YWxhZGRpbjpv"]
)
def test_whole_authorization_values_are_redacted(header: str) -> None:
    assert redact_text(header) == REDACTED
    assert redact({"h": header}) == {"h": REDACTED}


@pytest.mark.parametrize(
    "text",
    [
        "Basic information about the material",
        "Basic information",
        "a task-oriented risk-assessment of the oak panel",
        "The product is 120 cm wide",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_private_key_blocks_are_redacted() -> None:
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----"

    assert redact({"key_file": f"contents:\n{pem}\n"}) == {"key_file": f"contents:\n{REDACTED}\n"}


@dataclasses.dataclass
class Extraction:
    material: str
    confidence: Decimal
    api_key: str


class Opaque:
    def __repr__(self) -> str:
        return f"<Opaque client key={OPENAI_KEY}>"


class BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr failed")


def test_non_json_values_are_converted() -> None:
    when = dt.datetime(2024, 11, 24, 9, 30, tzinfo=dt.UTC)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    message = anthropic.types.Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-3-5-haiku-20241022",
            "content": [{"type": "text", "text": f"echo {OPENAI_KEY}"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 3, "output_tokens": 1},
        }
    )
    payload = {
        "when": when,
        "day": when.date(),
        "id": ident,
        "price": Decimal("0.00000074"),
        "image": b"\x89PNG\r\n\x1a\n\x00\x00",
        "text_bytes": b"plain",
        "tags": {"b", "a", "c"},
        "pair": (1, 2),
        "big": 2**80,
        "message": message,
        "extraction": Extraction("oak", Decimal("0.93"), "k-dataclass"),
        "opaque": Opaque(),
        "broken": BrokenRepr(),
        "type": int,
        7: "int key",
    }

    out = redact(payload)

    assert isinstance(out, dict)
    assert orjson.loads(encoded(out)) == out  # plain JSON all the way down
    assert out["when"] == "2024-11-24T09:30:00+00:00"
    assert out["day"] == "2024-11-24"
    assert out["id"] == str(ident)
    assert out["price"] == "0.00000074"
    assert out["image"] == "[10 bytes]"
    assert out["text_bytes"] == "plain"
    assert out["tags"] == ["a", "b", "c"]
    assert out["pair"] == [1, 2]
    assert out["big"] == str(2**80)
    assert out["message"]["usage"]["input_tokens"] == 3
    assert out["extraction"] == {"material": "oak", "confidence": "0.93", "api_key": REDACTED}
    assert out["7"] == "int key"
    assert OPENAI_KEY not in encoded(out).decode()
    assert "Opaque client" in out["opaque"]
    assert "BrokenRepr" in out["broken"]


def test_small_payloads_come_back_unchanged() -> None:
    payload = {"task": "material_classification", "prompt": "Classify: solid oak", "n": 1}

    out = redact(payload)

    assert out == payload
    assert out is not payload  # a copy: later changes by the caller do not leak in


def test_long_strings_are_truncated_with_a_marker() -> None:
    image = "iVBORw0KGgo" + "A" * 2_000_000
    payload = {"model": "claude-3-5-sonnet-20241022", "image": image, "prompt": "describe"}

    out = redact(payload, max_bytes=4096)

    assert isinstance(out, dict)
    assert len(encoded(out)) <= 4096
    assert out["model"] == payload["model"]
    assert out["prompt"] == "describe"
    assert out["image"].startswith("iVBORw0KGgo")
    assert out["image"].endswith("chars]")
    kept, _, marker = out["image"].partition("…[truncated ")
    assert len(kept) + int(marker.split()[0]) == len(image)


def test_long_lists_and_dicts_are_cut_with_a_count_of_what_was_cut() -> None:
    payload = {
        "embedding": [0.0123456789] * 50_000,
        "chunks": {f"chunk_{i}": i for i in range(10_000)},
    }

    out = redact(payload, max_bytes=2048)

    assert isinstance(out, dict)
    assert len(encoded(out)) <= 2048
    embedding, chunks = out["embedding"], out["chunks"]
    assert embedding[0] == 0.0123456789
    assert embedding[-1] == f"…[{50_000 - (len(embedding) - 1)} more items]"
    assert chunks["chunk_0"] == 0
    assert chunks["_truncated_keys"] == 10_000 - (len(chunks) - 1)


def test_a_secret_at_the_cut_is_redacted_before_truncation() -> None:
    text = "x" * 1000 + OPENAI_KEY + "y" * 5000

    out = redact({"prompt": text}, max_bytes=1024)

    assert OPENAI_KEY[:12] not in encoded(out).decode()


def test_hopelessly_large_payloads_become_a_stub() -> None:
    # Even one entry, its key and value cut to the bone, is more than 64 bytes.
    payload = {f"{'k' * 30}{i}": "v" * 30 for i in range(2000)}

    out = redact(payload, max_bytes=64)

    assert isinstance(out, dict)
    assert out["_truncated"] is True
    assert out["_original_bytes"] > 64
    assert set(out) == {"_truncated", "_original_bytes"}
    assert len(encoded(out)) <= 64


def run_with_deadline(value: object, seconds: float = 10.0) -> object:
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(redact(value)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "redact did not finish"
    return result[0]


def test_cycles_terminate() -> None:
    loop: dict[str, Any] = {"name": "job"}
    loop["self"] = loop
    ring: list[Any] = [1]
    ring.append(ring)

    assert run_with_deadline(loop) == {"name": "job", "self": "[cycle]"}
    assert run_with_deadline(ring) == [1, "[cycle]"]


def test_shared_references_cannot_explode() -> None:
    node: list[Any] = [1]
    for _ in range(60):
        node = [node, node]  # 2**60 leaves if expanded naively

    out = run_with_deadline(node)

    assert len(encoded(out)) <= 16_384


def test_deep_nesting_is_cut() -> None:
    deep: Any = "bottom"
    for _ in range(500):
        deep = {"d": deep}

    out = run_with_deadline(deep)

    assert b"[depth limit]" in encoded(out)


def test_lone_surrogates_do_not_break_encoding() -> None:
    out = redact({"text": "broken \ud800 text"})

    assert isinstance(out, dict)
    assert encoded(out)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=300)
    | st.binary(max_size=50)
    | st.decimals(allow_nan=False)
    | st.datetimes()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=40)
        | st.dictionaries(st.text(max_size=20), children, max_size=20)
        | st.tuples(children, children)
        | st.frozensets(st.integers() | st.text(max_size=10), max_size=10)
    ),
    max_leaves=200,
)


@settings(max_examples=300, deadline=None)
@given(value=json_values, max_bytes=st.integers(min_value=64, max_value=4096))
def test_any_payload_encodes_within_its_cap(value: object, max_bytes: int) -> None:
    out = redact(value, max_bytes=max_bytes)

    assert len(encoded(out)) <= max_bytes


@settings(max_examples=200, deadline=None)
@given(
    payload=st.dictionaries(st.text(max_size=20), st.text(max_size=100), max_size=10),
    key=st.sampled_from(["api_key", "Authorization", "x-api-key", "password", "access_token"]),
    filler=st.text(alphabet="abcdefghij ", max_size=200),
)
def test_a_planted_secret_never_survives(payload: dict[str, str], key: str, filler: str) -> None:
    payload[key] = "planted-credential-0xC0FFEE"
    payload["prompt"] = f"{filler} {OPENAI_KEY} {filler}"

    text = encoded(redact(payload, max_bytes=1024)).decode()

    assert "planted-credential-0xC0FFEE" not in text
    assert OPENAI_KEY not in text

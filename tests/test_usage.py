"""Token usage read from real Anthropic / OpenAI SDK objects and from recorded JSON."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import anthropic.types
import openai.types
import pytest
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from producer.usage import usage_from_response

SCOUT = "meta-llama/Llama-4-Scout-17B-16E-Instruct"


def anthropic_message(**usage: Any) -> anthropic.types.Message:
    return anthropic.types.Message.model_validate(
        {
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "type": "message",
            "role": "assistant",
            "model": "claude-3-5-sonnet-20241022",
            "content": [{"type": "text", "text": "Material: oak veneer"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 20, "output_tokens": 7, **usage},
        }
    )


def chat_completion(model: str, usage: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-AbC123",
        "object": "chat.completion",
        "created": 1732400000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": '{"material": "oak"}'},
            }
        ],
        "usage": usage,
    }


def test_anthropic_input_tokens_include_cache_reads_and_writes() -> None:
    message = anthropic_message(cache_read_input_tokens=1000, cache_creation_input_tokens=300)

    assert usage_from_response(message) == {
        "model": "claude-3-5-sonnet-20241022",
        "provider": "anthropic",
        "input_tokens": 1320,
        "output_tokens": 7,
        "cache_read_tokens": 1000,
        "cache_write_tokens": 300,
    }


def test_anthropic_without_cache_fields_reports_no_cache_counts() -> None:
    usage = usage_from_response(anthropic_message())

    assert usage == {
        "model": "claude-3-5-sonnet-20241022",
        "provider": "anthropic",
        "input_tokens": 20,
        "output_tokens": 7,
    }


def test_recorded_anthropic_json_reads_like_the_sdk_object() -> None:
    message = anthropic_message(cache_read_input_tokens=64, cache_creation_input_tokens=0)

    recorded = message.model_dump(mode="json")

    assert usage_from_response(recorded) == usage_from_response(message)
    assert usage_from_response(recorded)["input_tokens"] == 84


def test_anthropic_stream_start_event_carries_the_message() -> None:
    message = anthropic_message(cache_read_input_tokens=10).model_dump(mode="json")

    usage = usage_from_response({"type": "message_start", "message": message})

    assert usage["input_tokens"] == 30
    assert usage["cache_read_tokens"] == 10
    assert usage["provider"] == "anthropic"


def test_openai_chat_completion_prompt_tokens_already_include_cached() -> None:
    completion = ChatCompletion.model_validate(
        chat_completion(
            "gpt-4o-2024-08-06",
            {
                "prompt_tokens": 1500,
                "completion_tokens": 40,
                "total_tokens": 1540,
                "prompt_tokens_details": {"cached_tokens": 1024},
            },
        )
    )

    assert usage_from_response(completion) == {
        "model": "gpt-4o-2024-08-06",
        "provider": "openai",
        "input_tokens": 1500,
        "output_tokens": 40,
        "cache_read_tokens": 1024,
    }


def test_openai_embeddings_count_prompt_tokens_as_input() -> None:
    response = openai.types.CreateEmbeddingResponse.model_validate(
        {
            "object": "list",
            "model": "text-embedding-3-small",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.01, -0.02, 0.03]}],
            "usage": {"prompt_tokens": 37, "total_tokens": 37},
        }
    )

    assert usage_from_response(response) == {
        "model": "text-embedding-3-small",
        "provider": "openai",
        "input_tokens": 37,
    }


def test_openai_responses_api_usage() -> None:
    response = Response.model_validate(
        {
            "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
            "object": "response",
            "created_at": 1741476542.0,
            "model": "gpt-4.1-mini-2025-04-14",
            "output": [],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": 2000,
                "input_tokens_details": {"cached_tokens": 1536, "cache_write_tokens": 0},
                "output_tokens": 300,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 2300,
            },
        }
    )

    usage = usage_from_response(response)

    assert usage["provider"] == "openai"
    assert usage["input_tokens"] == 2000
    assert usage["output_tokens"] == 300
    assert usage["cache_read_tokens"] == 1536


def test_together_chat_completion_json_is_told_apart_from_openai() -> None:
    recorded = chat_completion(
        SCOUT,
        {"prompt_tokens": 912, "completion_tokens": 85, "total_tokens": 997, "cached_tokens": 512},
    )

    assert usage_from_response(recorded) == {
        "model": SCOUT,
        "provider": "together",
        "input_tokens": 912,
        "output_tokens": 85,
        "cache_read_tokens": 512,
    }


def test_together_through_the_openai_sdk_is_still_together() -> None:
    # Together documents calling it with the OpenAI client and its own base_url.
    completion = ChatCompletion.model_validate(
        chat_completion(SCOUT, {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12})
    )

    assert usage_from_response(completion)["provider"] == "together"


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("my-company/fine-tuned-classifier", {}),  # an org Together is not known to serve
        ("llama-3.3-70b-versatile", {}),  # another OpenAI-compatible host
        ("meta-llama/llama-4-scout", {"provider": "Together"}),  # a router reselling it
    ],
)
def test_provider_left_out_when_it_cannot_be_told(model: str, extra: dict[str, Any]) -> None:
    recorded = chat_completion(model, {"prompt_tokens": 5, "completion_tokens": 1}) | extra

    usage = usage_from_response(recorded)

    assert "provider" not in usage
    assert usage["model"] == model
    assert usage["input_tokens"] == 5


def test_response_without_usage_gives_only_the_model() -> None:
    completion = ChatCompletion.model_validate(chat_completion("gpt-4o-mini", None))

    assert usage_from_response(completion) == {"model": "gpt-4o-mini", "provider": "openai"}
    assert usage_from_response({"model": "clip-vit-large-patch14"}) == {
        "model": "clip-vit-large-patch14"
    }


class Exploding:
    @property
    def usage(self) -> object:
        raise RuntimeError("lazy attribute failed")

    @property
    def model(self) -> object:
        raise RuntimeError("lazy attribute failed")


@pytest.mark.parametrize(
    "value",
    [None, 42, "claude", b"bytes", [1, 2], object(), Exploding(), {"usage": "many"}, {}],
)
def test_unrecognised_values_give_nothing_and_never_raise(value: object) -> None:
    assert usage_from_response(value) == {}


def test_nonsense_counts_are_dropped_not_recorded() -> None:
    recorded = chat_completion(
        "gpt-4o", {"prompt_tokens": -3, "completion_tokens": "12", "total_tokens": True}
    )

    assert usage_from_response(recorded) == {"model": "gpt-4o", "provider": "openai"}


def test_importing_usage_and_redact_loads_no_sdk() -> None:
    heavy = ["anthropic", "openai", "together", "genai_prices", "pydantic"]
    code = (
        "import sys, producer.usage, producer.redact; "
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )

    assert result.stdout.strip() == ""

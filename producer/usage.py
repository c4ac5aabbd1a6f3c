"""Token usage from AI provider responses: Anthropic, OpenAI and Together, SDK objects or JSON.

Works by duck typing on attributes and keys, so that importing it costs nothing: the SDKs
(and pydantic) are never imported here. Counts follow the genai-prices / OpenTelemetry
convention that ailedger prices with: ``input_tokens`` is the total input, cache reads and
cache writes included; ``cache_read_tokens`` and ``cache_write_tokens`` say how much of it
was priced at the cache rates, and ``cache_write_1h_tokens`` how much of the writes went to
Anthropic's 1-hour cache (``usage.cache_creation.ephemeral_1h_input_tokens``), priced higher.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

ANTHROPIC = "anthropic"
OPENAI = "openai"
TOGETHER = "together"

# Organisations whose open models Together serves as ``org/model``. OpenAI's and Anthropic's
# own APIs never put a slash in a model name, so ``org/model`` from one of these is Together.
_TOGETHER_ORGS = frozenset(
    {
        "meta-llama",
        "mistralai",
        "qwen",
        "deepseek-ai",
        "togethercomputer",
        "nousresearch",
        "google",
        "nvidia",
        "baai",
        "intfloat",
        "moonshotai",
        "zai-org",
        "arcee-ai",
        "black-forest-labs",
        "lgai-exaone",
        "marin-community",
        "salesforce",
        "servicenow-ai",
        "upstage",
        "allenai",
        "microsoft",
        "alibaba-nlp",
        "thudm",
        "gryphe",
        "scb10x",
        "meta",
    }
)
_OPENAI_MODEL = re.compile(
    r"(?:(?:ft:)?gpt-(?!oss)|chatgpt-|o[1-9](?:$|-)|text-embedding-|davinci|babbage|omni-moderation|"
    r"computer-use|codex-|dall-e|tts-|whisper-)",
    re.IGNORECASE,
)
_CHAT_OBJECTS = frozenset({"chat.completion", "chat.completion.chunk", "text_completion", "list"})

# How a response counts its input tokens.
_ANTHROPIC_SHAPE = "anthropic"  # usage.input_tokens excludes cache reads and writes
_PROMPT_SHAPE = "prompt"  # usage.prompt_tokens, cached tokens included (chat, embeddings)
_RESPONSES_SHAPE = "responses"  # usage.input_tokens, cached tokens included (Responses API)


def usage_from_response(response: object) -> dict[str, object]:
    """The model, provider and token counts an SDK response (or its JSON) reports.

    Returns only the keys found among ``model``, ``provider``, ``input_tokens``,
    ``output_tokens``, ``cache_read_tokens``, ``cache_write_tokens`` and
    ``cache_write_1h_tokens``; ``provider`` is
    left out rather than guessed when the response does not say. Never raises: anything
    unrecognised gives ``{}``.
    """
    try:
        return _extract(response)
    except Exception:
        return {}


def _extract(response: object) -> dict[str, object]:
    if response is None or isinstance(response, str | bytes | int | float | list | tuple):
        return {}
    kind = _tag(response, "type")
    if kind == "message_start":
        # A streamed Anthropic message starts with an event that carries the message.
        inner = _field(response, "message")
        if inner is not None:
            response, kind = inner, _tag(inner, "type")
    result: dict[str, object] = {}
    model = _field(response, "model")
    if isinstance(model, str) and model:
        result["model"] = model
    else:
        model = None
    usage = _field(response, "usage")
    shape = _shape(kind, _tag(response, "object"), usage)
    provider = _provider(response, kind, shape, model)
    if provider is not None:
        result["provider"] = provider
    if usage is not None and shape is not None:
        result.update(_counts(usage, shape))
    return result


def _field(obj: object, name: str) -> object:
    """``obj[name]`` for mappings, ``obj.name`` for objects, None when absent or broken."""
    try:
        if isinstance(obj, Mapping):
            return obj.get(name)
        return getattr(obj, name, None)
    except Exception:
        return None


def _tag(obj: object, name: str) -> str | None:
    """A type tag such as ``object`` or ``type``, plain even when an SDK made it a str Enum."""
    value = _field(obj, name)
    return str.__str__(value) if isinstance(value, str) else None


def _count(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value) if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def _shape(kind: str | None, obj: str | None, usage: object) -> str | None:
    if kind == "message":
        return _ANTHROPIC_SHAPE
    if obj in _CHAT_OBJECTS:
        return _PROMPT_SHAPE
    if obj == "response":
        return _RESPONSES_SHAPE
    if usage is None:
        return None
    # No type marker (a trimmed recording, another SDK): recognise the usage object itself.
    if _field(usage, "prompt_tokens") is not None:
        return _PROMPT_SHAPE
    if (
        _field(usage, "cache_creation_input_tokens") is not None
        or _field(usage, "cache_read_input_tokens") is not None
    ):
        return _ANTHROPIC_SHAPE
    if _field(usage, "input_tokens") is not None or _field(usage, "output_tokens") is not None:
        # Without cache details both conventions agree: input_tokens is the whole input.
        return _RESPONSES_SHAPE
    return None


def _counts(usage: object, shape: str) -> dict[str, object]:
    counts: dict[str, object] = {}
    if shape == _ANTHROPIC_SHAPE:
        uncached = _count(_field(usage, "input_tokens"))
        cache_read = _count(_field(usage, "cache_read_input_tokens"))
        cache_write = _count(_field(usage, "cache_creation_input_tokens"))
        ttl = _field(usage, "cache_creation")
        one_hour = _count(_field(ttl, "ephemeral_1h_input_tokens"))
        five_minutes = _count(_field(ttl, "ephemeral_5m_input_tokens"))
        if one_hour is not None or five_minutes is not None:
            # The breakdown by TTL adds up to the writes; trust it where the total is missing.
            split = (one_hour or 0) + (five_minutes or 0)
            cache_write = split if cache_write is None else max(cache_write, split)
            counts["cache_write_1h_tokens"] = one_hour or 0
        if uncached is not None:
            counts["input_tokens"] = uncached + (cache_read or 0) + (cache_write or 0)
        output = _count(_field(usage, "output_tokens"))
    elif shape == _PROMPT_SHAPE:
        if (prompt := _count(_field(usage, "prompt_tokens"))) is not None:
            counts["input_tokens"] = prompt
        details = _field(usage, "prompt_tokens_details")
        cache_read = _count(_field(details, "cached_tokens"))
        if cache_read is None:
            # Together reports cached prompt tokens at the top level of usage.
            cache_read = _count(_field(usage, "cached_tokens"))
        cache_write = _count(_field(details, "cache_write_tokens"))
        output = _count(_field(usage, "completion_tokens"))
    else:
        if (total_input := _count(_field(usage, "input_tokens"))) is not None:
            counts["input_tokens"] = total_input
        details = _field(usage, "input_tokens_details")
        cache_read = _count(_field(details, "cached_tokens"))
        cache_write = _count(_field(details, "cache_write_tokens"))
        output = _count(_field(usage, "output_tokens"))
    if output is not None:
        counts["output_tokens"] = output
    if cache_read is not None:
        counts["cache_read_tokens"] = cache_read
    if cache_write is not None:
        counts["cache_write_tokens"] = cache_write
    return counts


def _provider(
    response: object, kind: str | None, shape: str | None, model: str | None
) -> str | None:
    module = "" if isinstance(response, Mapping) else type(response).__module__ or ""
    if module.startswith("together") or ".together" in module:
        return TOGETHER
    if kind == "message" or module.startswith("anthropic"):
        return ANTHROPIC
    if model is None or shape is None:
        return None
    org, slash, name = model.partition("/")
    if slash:
        # Routers (OpenRouter) serve the same ``org/model`` names; they mark their responses.
        routed = _field(response, "provider") is not None or str(
            _field(response, "id") or ""
        ).startswith("gen-")
        if org.lower() in _TOGETHER_ORGS and name and not routed:
            return TOGETHER
        return None
    if model.lower().startswith("claude"):
        return ANTHROPIC
    # The OpenAI SDK also talks to other OpenAI-compatible APIs, so its class says nothing;
    # OpenAI's own model names do.
    if _OPENAI_MODEL.match(model):
        return OPENAI
    return None

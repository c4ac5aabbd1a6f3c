"""Secrets out, size capped: what a request or response payload may carry into the ledger.

:func:`redact` runs in the producer's sender thread, before a payload leaves the service. It
returns a JSON-native copy (dicts with string keys, lists, strings, numbers, booleans, None)
in which values under secret-looking keys, and credentials found inside strings, read
``[REDACTED]``, and whose orjson encoding fits ``max_bytes``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import re
import uuid
from collections import deque
from collections.abc import Mapping
from decimal import Decimal

import orjson

REDACTED = "[REDACTED]"
DEFAULT_MAX_BYTES = 16_384
MAX_DEPTH = 32

_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what orjson can encode
# Strings longer than max_bytes can never fit; only this much past the cap is scanned for
# credentials, so that a secret straddling the eventual cut is still recognised whole.
_SCAN_MARGIN = 512
_TRUNCATED = re.compile(r"…\[truncated (\d+) chars\]\Z")
_MORE_ITEMS = re.compile(r"…\[(\d+) more items\]")
_MORE_KEYS = "_truncated_keys"  # the number of entries cut from a dict

# Key names, lower-cased with "-", "_", "." and spaces removed.
_SECRET_KEYS = frozenset({"auth", "token", "pwd", "cookie", "setcookie", "xapikey"})
_SECRET_KEY_PART = re.compile(
    "password|passwd|passphrase|secret|apikey|privatekey|authorization|cookie|credential|"
    "subscriptionkey"
)
_VOCABULARY_TOKEN = re.compile("(?:pad|bos|eos|unk|sep|cls|mask|stop|start|end)token")  # not secret


_Rule = tuple[tuple[str, ...], str, re.Pattern[str], str]


def _rule(gates: str, pattern: str, replacement: str = REDACTED, needs: str = "") -> _Rule:
    return tuple(gates.split("|")), needs, re.compile(pattern), replacement


# A rule runs only when one of its "|"-separated gates, and what it needs, occur in the
# lower-cased text: substring tests are far cheaper than a regex scan, and most strings
# trip none.
_RULES: tuple[_Rule, ...] = (
    _rule(
        "private key",
        r"-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END[A-Z ]*PRIVATE KEY-----|\Z)",
    ),
    _rule("sk-", r"\bsk-[A-Za-z0-9_\-]{20,}"),  # OpenAI sk-…, sk-proj-…; Anthropic sk-ant-…
    _rule("akia|asia", r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),  # AWS access key ids
    _rule("eyj", r"\beyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*"),  # JWT
    _rule(
        "ghp_|gho_|ghu_|ghs_|ghr_|github_pat_",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{20,})",
    ),
    _rule("aiza", r"\bAIza[0-9A-Za-z_\-]{30,}"),  # Google
    _rule("xox", r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"),  # Slack
    _rule("hf_", r"\bhf_[A-Za-z0-9]{30,}"),  # Hugging Face
    _rule("tgp_v1_", r"\btgp_v1_[A-Za-z0-9_\-]{20,}"),  # Together
    _rule("k_live_|k_test_", r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}"),  # Stripe
    _rule("bearer", r"(?i:\bbearer\s+)[A-Za-z0-9._~+/=\-]{16,}"),
    # Credentials next to a name that says what they are: URLs, headers, key=value, JSON text.
    _rule("://", r"(?<=://)[^\s/@:]+:[^\s/@]+(?=@)", needs="@"),
    _rule(
        "key=|token=|secret=|password=|passwd=|signature=|sig=|credential=",
        r"(?i)([?&;][\w.\-]*?(?:key|token|secret|password|passwd|signature|sig|credential)=)"
        r"[^&#\s\"'<>]+",
        rf"\1{REDACTED}",
    ),
    _rule(
        "authorization|cookie|x-api-key",
        r"(?im)^(\s*(?:proxy-)?authorization|\s*(?:set-)?cookie|\s*x-api-key)\s*:\s*\S[^\r\n]*",
        rf"\1: {REDACTED}",
        needs=":",
    ),
    _rule(
        "password|passwd|pwd|secret|apikey|api_key|api-key|token=|token =",
        r"(?i)\b((?:password|passwd|pwd|client_secret|secret|api[_-]?key|"
        r"(?:access|refresh|auth|id)[_-]?token)\s*=\s*)[^\s&,;'\"]+",
        rf"\1{REDACTED}",
        needs="=",
    ),
    _rule(
        'password"|passwd"|secret"|key"|authorization"|cookie"|token"',
        r"(?i)(\"(?:[\w\-]*(?:password|passwd|secret|api[_-]?key|authorization|cookie)"
        r"|(?:[\w\-]*[_\-])?token)\"\s*:\s*)\"(?:[^\"\\]|\\.)*\"",
        rf'\1"{REDACTED}"',
        needs=":",
    ),
)
_GATES = tuple(dict.fromkeys(gate for gates, _, _, _ in _RULES for gate in gates))
_HEADER_VALUE = re.compile(r"(?i)\s*(?:bearer\s+\S+|basic\s+([A-Za-z0-9+/]{8,}={0,2}))\s*")


def redact(value: object, *, max_bytes: int = DEFAULT_MAX_BYTES) -> object:
    """A JSON-native copy of ``value`` without secrets, whose orjson encoding fits ``max_bytes``.

    Values under secret-looking keys (``api_key``, ``Authorization``, ``password``,
    ``access_token``, ``cookie``…; not token counts such as ``max_tokens``) and credentials
    inside strings (``sk-…`` keys, bearer tokens, AWS key ids, JWTs, private keys…) become
    ``"[REDACTED]"``. Values JSON lacks are converted (datetimes to ISO strings, Decimals and
    UUIDs to strings, sets to lists, pydantic models through ``model_dump``, anything else
    through ``repr``). A payload too big is shrunk deterministically: long strings end in
    ``"…[truncated N chars]"``, long lists in ``"…[N more items]"``; when even that does not
    fit, the result is ``{"_truncated": True, "_original_bytes": N}`` (about 50 bytes, so
    ``max_bytes`` below that cannot be honoured), where N is the encoded size of the redacted
    copy — a lower bound for huge payloads, whose excess is cut while copying. Never raises.
    """
    try:
        limit = max(int(max_bytes), 0)
        clean = _Cleaner(limit).clean(value, 0)
        encoded = _encode(clean)
        if encoded is None:
            clean = repair_unicode(clean)
            encoded = _encode(clean)
            if encoded is None:
                return {"_truncated": True, "_original_bytes": None}
        if len(encoded) <= limit:
            return clean
        for strings, items, depth in _shrink_steps(limit):
            smaller = _shrink(clean, strings, items, depth)
            encoded_smaller = _encode(smaller)
            if encoded_smaller is not None and len(encoded_smaller) <= limit:
                return smaller
        return {"_truncated": True, "_original_bytes": len(encoded)}
    except Exception as exc:
        # Only a defect in this module gets here; the payload is dropped, never sent raw.
        return {"_redaction_failed": type(exc).__name__}


def redact_text(text: str) -> str:
    """``text`` with the credentials found in it replaced by ``[REDACTED]``."""
    if len(text) < 8:
        return text
    lower = text.lower()
    if lower.lstrip().startswith(("bearer", "basic")):
        header = _HEADER_VALUE.fullmatch(text)
        if header is not None:
            basic = header.group(1)
            # "Basic <base64>" only when it looks like base64: "Basic information" survives.
            if basic is None or not basic.islower() or any(c in "0123456789+/=" for c in basic):
                return REDACTED
    for gate in _GATES:
        if gate in lower:
            break
    else:
        return text  # the common case: nothing that could be a credential
    for gates, needs, pattern, replacement in _RULES:
        if needs not in lower:
            continue
        for gate in gates:
            if gate in lower:
                text = pattern.sub(replacement, text)
                break
    return text


@functools.lru_cache(maxsize=4096)
def is_secret_key(name: str) -> bool:
    """Whether a value stored under this key name is a credential (``X-Api-Key``, ``token``…)."""
    key = name.lower().replace("-", "").replace("_", "").replace(".", "").replace(" ", "")
    if key in _SECRET_KEYS or _SECRET_KEY_PART.search(key):
        return True
    # "access_token" is a secret, "input_tokens" and "max_tokens" are counts.
    return key.endswith("token") and not _VOCABULARY_TOKEN.fullmatch(key)


@functools.lru_cache(maxsize=4096)
def _redacted_key(key: str) -> str:
    # Keys repeat from payload to payload; scanning each distinct one once is enough.
    return redact_text(key)


class _Cleaner:
    """One pass that redacts and converts to JSON-native types, bounded in depth and work."""

    __slots__ = ("budget", "max_bytes", "path")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        # Shared references could expand a small object graph exponentially; every node
        # costs at least a byte of output, so past this many nothing more can fit anyway.
        self.budget = 4 * max_bytes + 1024
        self.path: set[int] = set()  # ids of the containers being cleaned, to spot cycles

    def clean(self, value: object, depth: int) -> object:
        self.budget -= 1
        kind = type(value)
        if kind is str:
            return self._text(value)  # type: ignore[arg-type]
        if value is None or kind is bool or kind is float:
            return value
        if kind is int:
            return value if _INT_MIN <= value <= _INT_MAX else str(value)  # type: ignore[operator]
        if self.budget < 0:
            return "[…]"
        if depth >= MAX_DEPTH:
            return "[depth limit]"
        if isinstance(value, Mapping | list | tuple | set | frozenset | deque):
            marker = id(value)
            if marker in self.path:
                return "[cycle]"
            self.path.add(marker)
            try:
                if isinstance(value, Mapping):
                    return self._mapping(value, depth)
                return self._sequence(value, depth)
            except Exception:
                # A container whose iteration fails (a broken custom Mapping) loses itself only.
                return f"[unreadable {type(value).__name__}]"
            finally:
                self.path.discard(marker)
        return self._other(value, depth)

    def _text(self, text: str) -> str:
        if len(text) <= self.max_bytes:
            return redact_text(text)
        window = text[: self.max_bytes + _SCAN_MARGIN]
        scanned = redact_text(window)
        kept = scanned[: self.max_bytes]
        return f"{kept}…[truncated {len(text) - len(window) + len(scanned) - len(kept)} chars]"

    def _mapping(self, value: Mapping[object, object], depth: int) -> dict[str, object]:
        # Each entry encodes to at least 5 bytes ('"":0,'), so more could never fit.
        room = self.max_bytes // 5 + 1
        out: dict[str, object] = {}
        vocabulary = "logprob" in value  # OpenAI logprobs: {"token": "Hello", "logprob": …}
        for index, (key, item) in enumerate(value.items()):
            if index >= room:
                out[_MORE_KEYS] = len(value) - index
                break
            name = self._key(key)
            if (
                is_secret_key(name)
                and not (vocabulary and name == "token")
                and not _is_number(item)
            ):
                out[name] = REDACTED
            else:
                out[name] = self.clean(item, depth + 1)
        return out

    def _key(self, key: object) -> str:
        if type(key) is not str:
            if key is None or isinstance(key, bool | int | float):
                return orjson.dumps(key).decode()
            cleaned = self.clean(key, MAX_DEPTH - 1)
            key = cleaned if isinstance(cleaned, str) else repr(cleaned)
        if len(key) > self.max_bytes:
            return self._text(key)
        return _redacted_key(key)

    def _sequence(self, value: object, depth: int) -> list[object]:
        items: list[object] = list(value)  # type: ignore[call-overload]
        room = self.max_bytes // 2 + 1  # each item takes at least 2 bytes ("0,")
        dropped = len(items) - room
        if dropped > 0:
            items = items[:room]
        # Header pairs: ("X-Api-Key", "abc123"), ["Authorization", "..."].
        if (
            len(items) == 2
            and isinstance(items[0], str)
            and is_secret_key(items[0])
            and not _is_number(items[1])
        ):
            return [self.clean(items[0], depth + 1), REDACTED]
        out = [self.clean(item, depth + 1) for item in items]
        if isinstance(value, set | frozenset):
            out.sort(key=repr)  # a set has no order; the ledger's copy should be stable
        if dropped > 0:
            out.append(_more_items(dropped))
        return out

    def _other(self, value: object, depth: int) -> object:
        if isinstance(value, str):  # str subclasses, StrEnum
            return self._text(str.__str__(value))
        if isinstance(value, enum.Enum):
            return self.clean(value.value, depth + 1)
        if isinstance(value, int):  # IntEnum handled above; other int subclasses
            return self.clean(int(value), depth)
        if isinstance(value, float):
            return float(value)
        if isinstance(value, dt.datetime | dt.date | dt.time):
            return value.isoformat()
        if isinstance(value, dt.timedelta):
            return value.total_seconds()
        if isinstance(value, Decimal):
            # Plain notation ("0.00000074", not "7.4E-7") unless that would be huge.
            plain = value.is_finite() and -64 < value.adjusted() < 64
            return format(value, "f") if plain else str(value)
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, bytes | bytearray | memoryview):
            raw = bytes(value)
            try:
                return self._text(raw.decode())
            except UnicodeDecodeError:
                return f"[{len(raw)} bytes]"
        if isinstance(value, BaseException):
            return self._text(f"{type(value).__name__}: {value}")
        if not isinstance(value, type):
            converted = _plain(value)
            if converted is not None:
                return self.clean(converted, depth + 1)
        try:
            text = repr(value)
        except Exception:
            text = f"<{type(value).__name__}>"
        return self._text(text)


def _is_number(value: object) -> bool:
    # Numbers, booleans and None carry no credential: "max_token": 512 stays.
    return value is None or isinstance(value, bool | int | float)


def _plain(value: object) -> object:
    """A pydantic model, dataclass or array as plain Python data; None if it is none of those."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        for kwargs in ({"mode": "json", "warnings": False}, {}):
            try:
                return dump(**kwargs)
            except Exception:
                continue
        return None
    if dataclasses.is_dataclass(value):
        return {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and hasattr(value, "dtype"):  # numpy arrays and scalars
        if getattr(value, "size", 0) > 100_000:
            return None
        try:
            return tolist()
        except Exception:
            return None
    return None


def _encode(value: object) -> bytes | None:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return None


def repair_text(text: str) -> str:
    """``text`` as UTF-8 can carry it: lone surrogates (e.g. from surrogateescape) become U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def repair_unicode(value: object) -> object:
    """``value`` with every string (keys too) passed through :func:`repair_text`."""
    if isinstance(value, str):
        return repair_text(value)
    if isinstance(value, dict):
        return {repair_unicode(k): repair_unicode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [repair_unicode(item) for item in value]
    return value


def _truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters plus a marker counting all it has lost so far."""
    dropped = 0
    previous = _TRUNCATED.search(text)
    if previous is not None:
        text, dropped = text[: previous.start()], int(previous.group(1))
    return f"{text[:limit]}…[truncated {dropped + max(len(text) - limit, 0)} chars]"


def _more_items(count: int) -> str:
    return f"…[{count} more items]"


def _shrink_steps(max_bytes: int) -> list[tuple[int, int, int]]:
    """(longest string, most items per list or dict, deepest nesting), loosest first."""
    return [
        (max_bytes // 2, 256, MAX_DEPTH),
        (max_bytes // 8, 64, MAX_DEPTH),
        (max_bytes // 32, 16, 16),
        (32, 8, 8),
        (8, 4, 4),
        (0, 1, 2),
    ]


def _shrink(value: object, strings: int, items: int, depth: int) -> object:
    if isinstance(value, str):
        # A marker costs ~25 bytes: cutting less than that would grow the string.
        if len(value) > strings + 32:
            return _truncate(value, strings)
        return value
    if isinstance(value, dict | list) and depth <= 0:
        return "[depth limit]"
    if isinstance(value, list):
        dropped = 0
        if value and isinstance(value[-1], str) and (earlier := _MORE_ITEMS.fullmatch(value[-1])):
            value, dropped = value[:-1], int(earlier.group(1))  # cut once already
        out = [_shrink(item, strings, items, depth - 1) for item in value[:items]]
        dropped += max(len(value) - items, 0)
        if dropped:
            out.append(_more_items(dropped))
        return out
    if isinstance(value, dict):
        shrunk: dict[str, object] = {}
        earlier = value.get(_MORE_KEYS)
        dropped = earlier if type(earlier) is int and earlier > 0 else 0  # cut once already
        entries = [(k, v) for k, v in value.items() if not (dropped and k == _MORE_KEYS)]
        for key, item in entries[:items]:
            name = key if len(key) <= strings + 32 else _truncate(key, strings)
            shrunk[name] = _shrink(item, strings, items, depth - 1)
        dropped += max(len(entries) - items, 0)
        if dropped:
            shrunk[_MORE_KEYS] = dropped
        return shrunk
    return value

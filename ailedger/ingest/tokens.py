"""Ingest tokens: who may write events over HTTP, and which service they write for.

``AILEDGER_INGEST_TOKENS`` is a comma-separated list of ``token`` or ``service:token``
entries. A token bound to a service stamps that name on every event it sends, whatever
the event says, so one service cannot log as another. Ingest tokens are separate from
the admin token (``AILEDGER_API_TOKEN``): a leaked ingest token can add events, never
read them.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from worker.errors import ConfigurationError


class IngestTokenError(ConfigurationError, ValueError):
    """``AILEDGER_INGEST_TOKENS`` cannot be read."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What a valid token allows: writing events, stamped with ``service`` when bound."""

    service: str | None


@dataclass(frozen=True, slots=True)
class IngestTokens:
    """The configured tokens, compared in constant time."""

    entries: tuple[tuple[bytes, Grant], ...]

    @classmethod
    def parse(cls, text: str | None) -> IngestTokens:
        """Read ``token`` / ``service:token`` entries separated by commas."""
        entries: list[tuple[bytes, Grant]] = []
        seen: set[bytes] = set()
        for position, raw in enumerate((text or "").split(","), start=1):
            entry = raw.strip()
            if not entry:
                continue
            service, sep, token = entry.partition(":")
            if not sep:
                service, token = "", entry
            service, token = service.strip(), token.strip()
            if sep and not service:
                raise IngestTokenError(
                    f"AILEDGER_INGEST_TOKENS entry {position} starts with ':'; write "
                    "'service:token' or just 'token'"
                )
            if not token:
                raise IngestTokenError(
                    f"AILEDGER_INGEST_TOKENS entry {position} ({service}:) has no token "
                    "after the ':'"
                )
            digest = _digest(token)
            if digest in seen:
                raise IngestTokenError(
                    f"AILEDGER_INGEST_TOKENS entry {position} repeats a token; "
                    "give each service its own"
                )
            seen.add(digest)
            entries.append((digest, Grant(service or None)))
        return cls(tuple(entries))

    def __bool__(self) -> bool:
        return bool(self.entries)

    def check(self, presented: str | None) -> Grant | None:
        """The grant of ``presented``, or None when it is no configured token."""
        if not presented:
            return None
        digest = _digest(presented)
        found: Grant | None = None
        for expected, grant in self.entries:
            # Every entry is compared, equal-length digests: the time taken says nothing.
            if hmac.compare_digest(digest, expected):
                found = grant
        return found


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

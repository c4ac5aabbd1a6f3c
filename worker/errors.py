"""ailedger's one exception family; library errors are translated where they enter."""

from __future__ import annotations


class AILedgerError(Exception):
    """Base of every error ailedger raises on purpose."""


class ConfigurationError(AILedgerError):
    """A setting is missing or wrong; the message says which and how to fix it."""


class MigrationError(AILedgerError):
    """A migration could not be applied."""


class StorageUnavailable(AILedgerError):
    """Postgres cannot be reached right now; the batch stays unacknowledged and is retried."""

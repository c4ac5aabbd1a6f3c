"""ailedger's one exception family; library errors are translated where they enter."""

from __future__ import annotations


class AILedgerError(Exception):
    """Base of every error ailedger raises on purpose."""

    #: The exit status of a command this error ends: 1, trouble at a server or in the data.
    exit_code = 1


class ConfigurationError(AILedgerError):
    """A setting is missing or wrong; the message says which and how to fix it."""


class InvalidInput(ConfigurationError):
    """A setting, flag or argument has a value ailedger cannot use (exit status 2)."""

    exit_code = 2


class ServerUnavailable(AILedgerError):
    """Redis or Postgres cannot be reached, or refused the connection."""


class SchemaMissing(AILedgerError):
    """The database or its tables do not exist yet: `ailedger migrate` has not run on it."""


class MigrationError(AILedgerError):
    """A migration could not be applied."""


class StorageUnavailable(AILedgerError):
    """Postgres cannot be reached right now; the batch stays unacknowledged and is retried."""

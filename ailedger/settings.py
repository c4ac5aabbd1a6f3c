"""The one configuration object of the application: the pipeline's settings and the rest.

Built from the environment (``AILEDGER_*``) and the command's flags, frozen once
built, and passed in. The pipeline's part is :class:`worker.settings.WorkerSettings`.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from ailedger.ingest.tokens import IngestTokens
from worker.settings import WorkerSettings


class Settings(WorkerSettings):
    """Everything a worker, the CLI, the API or the demo needs to know."""

    # Demo and embedded servers.
    data_dir: Path = Path(".ailedger")

    # The metrics API and the dashboard (`ailedger serve`).
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65_535)
    #: Bearer token of the admin endpoints; without one `serve` listens on loopback only.
    api_token: SecretStr | None = None
    #: How the API connects; default: database_url as the read-only role, without password.
    api_database_url: str | None = None
    api_role: str = "ailedger_reader"

    # Budgets, alerts and their delivery (docs/alerts.md).
    #: Key of the webhooks' X-Ailedger-Signature (HMAC-SHA256 of the body); unset: unsigned.
    webhook_secret: SecretStr | None = None
    #: Receivers of the rules' alerts when a rule names none (JSON list of URLs).
    alert_notify: list[str] = Field(default_factory=list)
    #: How often `ailedger jobs` evaluates rules and budgets, and delivers the outbox.
    alert_every_s: int = Field(default=60, ge=1)
    outbox_every_s: int = Field(default=15, ge=1)
    #: A projected overrun is only told once this fraction of the period has passed.
    projection_min_elapsed: float = Field(default=0.1, ge=0, le=1)
    outbox_timeout_s: float = Field(default=5.0, gt=0)
    outbox_backoff_base_s: float = Field(default=5.0, gt=0)
    outbox_backoff_cap_s: float = Field(default=600.0, gt=0)
    #: Attempts of a message before it (and what waits behind it) is marked failed.
    outbox_max_attempts: int = Field(default=50, ge=1)

    # Retention (`ailedger retention run`, daily on `ailedger jobs`); None: keep forever.
    retention_payload_days: int | None = Field(default=30, ge=1)
    retention_rows_days: int | None = Field(default=None, ge=1)
    retention_dead_letter_days: int | None = Field(default=30, ge=1)
    retention_batch_size: int = Field(default=10_000, ge=1)

    # Ingest over HTTP (`POST /api/ingest`, OTLP `POST /v1/traces`), on `ailedger serve`.
    #: Comma-separated ``token`` or ``service:token``; none: ingest answers 401.
    ingest_tokens: SecretStr | None = None
    #: Largest request body, after gzip decompression.
    ingest_max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    #: Largest single event, as JSON.
    ingest_max_event_bytes: int = Field(default=256 * 1024, ge=1024)
    #: request_data / response_data are redacted and capped to this, as the producer does.
    ingest_max_payload_bytes: int = Field(default=16_384, ge=0)

    @field_validator("ingest_tokens")
    @classmethod
    def _readable_tokens(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            IngestTokens.parse(value.get_secret_value())
        return value

    def ingest_grants(self) -> IngestTokens:
        """The ingest tokens, parsed."""
        return IngestTokens.parse(
            self.ingest_tokens.get_secret_value() if self.ingest_tokens else None
        )


def hide_password(url: str) -> str:
    """``url`` as it may be shown or logged: any password replaced by ``***``."""
    return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", url)

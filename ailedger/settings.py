"""The one configuration object of the application: the pipeline's settings and the rest.

Built from the environment (``AILEDGER_*``) and the command's flags, frozen once
built, and passed in. The pipeline's part is :class:`worker.settings.WorkerSettings`.
"""

from __future__ import annotations

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

"""The one configuration object of the application: the pipeline's settings and the rest.

Built from the environment (``AILEDGER_*``) and the command's flags, frozen once
built, and passed in. The pipeline's part is :class:`worker.settings.WorkerSettings`.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import Field, SecretStr, field_validator, model_validator

from ailedger.ingest.tokens import IngestTokens
from worker.settings import WorkerSettings, check_database_url

DEFAULT_READER_ROLE = "ailedger_reader"


class Settings(WorkerSettings):
    """Everything a worker, the CLI, the API or the demo needs to know."""

    # Demo and embedded servers.
    data_dir: Path = Path(".ailedger")

    # The metrics API and the dashboard (`ailedger serve`).
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65_535)
    #: Bearer token of the admin endpoints; without one `serve` listens on loopback only.
    api_token: SecretStr | None = None
    #: How the API connects; default: database_url as the read-only role, with the
    #: reader's password when one is set.
    api_database_url: str | None = None
    api_role: str = DEFAULT_READER_ROLE
    #: Exact origins (comma-separated) whose pages may embed the job and image elements
    #: and read their figures cross-origin; empty: same origin only (ailedger/api/cors.py).
    api_cors_origins: str = ""
    #: The read-only role's password: `migrate` sets it, the API logs in with it.
    reader_password: SecretStr | None = None
    #: A file holding it instead (a Docker or Kubernetes secret); wins over the variable.
    reader_password_file: Path | None = None

    @field_validator("api_database_url")
    @classmethod
    def _api_database_url(cls, value: str | None) -> str | None:
        return None if value is None else check_database_url(value)

    @model_validator(mode="before")
    @classmethod
    def _reader_login(cls, data: Any) -> Any:
        """Read the reader's password file, and give the API its URL with that password."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("reader_password_file"):
            path = Path(data["reader_password_file"])
            try:
                data["reader_password"] = path.read_text().strip()
            except OSError as exc:
                raise ValueError(
                    f"AILEDGER_READER_PASSWORD_FILE={path}: cannot read it ({exc.strerror}); "
                    "mount the secret there or unset the variable"
                ) from None
        password = data.get("reader_password")
        if isinstance(password, SecretStr):
            password = password.get_secret_value()
        if password and not data.get("api_database_url"):
            fields = cls.model_fields
            database_url = data.get("database_url") or fields["database_url"].default
            role = data.get("api_role") or fields["api_role"].default
            # A malformed database_url is left to its own validator, which says what is wrong.
            with contextlib.suppress(psycopg.ProgrammingError):
                data["api_database_url"] = reader_url(str(database_url), str(role), password)
        return data

    def reader_secret(self) -> str | None:
        """The read-only role's password, if one is configured."""
        return None if self.reader_password is None else self.reader_password.get_secret_value()

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
    #: Monthly partitions of ai_call_logs kept ready past this month (`ailedger partitions`).
    partition_months_ahead: int = Field(default=3, ge=0, le=120)

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


def reader_url(database_url: str, role: str, password: str | None) -> str:
    """``database_url`` logged in as ``role``: the writer's password never goes with it."""
    params = conninfo_to_dict(database_url)
    params.pop("password", None)
    params["user"] = role
    if password:
        params["password"] = password
    return make_conninfo("", **params)


def hide_password(url: str) -> str:
    """``url`` as it may be shown or logged: any password replaced by ``***``."""
    return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", url)

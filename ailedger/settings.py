"""The one configuration object of the application: the pipeline's settings and the rest.

Built from the environment (``AILEDGER_*``) and the command's flags, frozen once
built, and passed in. The pipeline's part is :class:`worker.settings.WorkerSettings`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import Field, SecretStr, field_validator, model_validator

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


def reader_url(database_url: str, role: str, password: str | None) -> str:
    """``database_url`` logged in as ``role``: the writer's password never goes with it."""
    params = conninfo_to_dict(database_url)
    params.pop("password", None)
    params["user"] = role
    if password:
        params["password"] = password
    return make_conninfo("", **params)

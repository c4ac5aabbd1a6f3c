"""The one configuration object of the application: the pipeline's settings and the rest.

Built from the environment (``AILEDGER_*``) and the command's flags, frozen once
built, and passed in. The pipeline's part is :class:`worker.settings.WorkerSettings`.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr

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


def hide_password(url: str) -> str:
    """``url`` as it may be shown or logged: any password replaced by ``***``."""
    return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", url)

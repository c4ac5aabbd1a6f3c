"""The one configuration object: built from the environment (``AILEDGER_*``) and flags."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from producer.constants import DEFAULT_GROUP, DEFAULT_STREAM
from producer.scoring import DEFAULT_THRESHOLD, DEFAULT_WEIGHTS


class Settings(BaseSettings):
    """Everything a worker, the CLI or the API needs to know, frozen once built."""

    model_config = SettingsConfigDict(env_prefix="AILEDGER_", frozen=True, extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = "postgresql://127.0.0.1:5432/ailedger"
    stream: str = DEFAULT_STREAM
    group: str = DEFAULT_GROUP

    # Consumer loop.
    batch_size: int = Field(default=500, ge=1, le=50_000)
    block_ms: int = Field(default=1_000, ge=1)
    claim_idle_ms: int = Field(default=60_000, ge=1)
    claim_every_s: float = Field(default=5.0, gt=0)
    max_deliveries: int = Field(default=5, ge=1)
    heartbeat_ttl_s: int = Field(default=30, ge=1)

    # Scoring.
    confidence_weights: dict[str, Decimal] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    default_threshold: Decimal = DEFAULT_THRESHOLD
    task_thresholds: dict[str, Decimal] = Field(default_factory=dict)

    # Pricing: how long a price looked up once is trusted before Postgres is asked again.
    price_cache_ttl_s: float = Field(default=60.0, ge=0)

    # Demo and embedded servers.
    data_dir: Path = Path(".ailedger")

    # Observability: Prometheus /metrics on workers, and the metrics API (`ailedger serve`).
    #: Port of a worker's /metrics endpoint; None or 0: not served.
    metrics_port: int | None = Field(default=None, ge=0, le=65_535)
    metrics_host: str = "0.0.0.0"
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65_535)
    #: Bearer token of the admin endpoints; without one `serve` listens on loopback only.
    api_token: SecretStr | None = None
    #: How the API connects; default: database_url as the read-only role, without password.
    api_database_url: str | None = None
    api_role: str = "ailedger_reader"

    def threshold_for(self, task: str) -> Decimal:
        return self.task_thresholds.get(task, self.default_threshold)

"""What the pipeline is configured by: built from the environment (``AILEDGER_*``) and flags.

The application's :class:`ailedger.settings.Settings` extends this class with the
API's and the demo's settings; at run time there is one frozen object, and the
pipeline reads only the part declared here.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from producer.constants import DEFAULT_GROUP, DEFAULT_STREAM
from producer.scoring import DEFAULT_THRESHOLD, DEFAULT_WEIGHTS


class WorkerSettings(BaseSettings):
    """Everything a worker needs to know, frozen once built."""

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
    #: ``worker --burst`` gives up, exiting 1, once a server has been away this long.
    burst_deadline_s: float = Field(default=60.0, gt=0)

    # Scoring.
    confidence_weights: dict[str, Decimal] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    default_threshold: Decimal = DEFAULT_THRESHOLD
    task_thresholds: dict[str, Decimal] = Field(default_factory=dict)

    # Pricing: how long a price looked up once is trusted before Postgres is asked again.
    price_cache_ttl_s: float = Field(default=60.0, ge=0)

    # Observability: Prometheus /metrics on workers.
    #: Port of a worker's /metrics endpoint; None or 0: not served.
    metrics_port: int | None = Field(default=None, ge=0, le=65_535)
    metrics_host: str = "0.0.0.0"

    def threshold_for(self, task: str) -> Decimal:
        return self.task_thresholds.get(task, self.default_threshold)

"""What the pipeline is configured by: built from the environment (``AILEDGER_*``) and flags.

The application's :class:`ailedger.settings.Settings` extends this class with the
API's and the demo's settings; at run time there is one frozen object, and the
pipeline reads only the part declared here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from producer.connection import cluster_mode
from producer.constants import DEFAULT_GROUP, DEFAULT_STREAM
from producer.scoring import DEFAULT_THRESHOLD, DEFAULT_WEIGHTS

REDIS_SCHEMES = ("redis", "rediss", "unix")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
POSTGRES_SCHEMES = ("postgresql", "postgres")

#: A confidence threshold: a score below it falls back to rules.
Threshold = Annotated[Decimal, Field(ge=0, le=1)]
Weight = Annotated[Decimal, Field(ge=0)]


def check_redis_url(url: str) -> str:
    """``url`` if Redis can be reached by it (redis://, rediss://, unix://), else ValueError."""
    scheme = _scheme(url)
    if scheme not in REDIS_SCHEMES:
        raise ValueError(
            f"{_scheme_said(scheme)} is not a Redis URL; use redis://HOST:PORT/DB, "
            "rediss:// (TLS) or unix:///path/to/redis.sock"
        )
    return url


def check_database_url(url: str) -> str:
    """``url`` if it is a Postgres URL (postgresql://, postgres://) or conninfo, else ValueError."""
    if "://" in url:
        scheme = _scheme(url)
        if scheme not in POSTGRES_SCHEMES:
            raise ValueError(
                f"{_scheme_said(scheme)} is not a Postgres URL; "
                "use postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
            )
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        # The message quotes the URL, password and all: say only what is wrong.
        problem = str(exc).split(" in URI")[0].split(" in connection info")[0].strip()
        raise ValueError(
            f"malformed Postgres URL ({problem}); use postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        ) from None
    for port in str(params.get("port") or "").split(","):
        if port and not (port.isdigit() and 1 <= int(port) <= 65_535):
            raise ValueError(f"port {port!r} is not a number from 1 to 65535")
    return url


def parse_shard_list(text: str) -> list[int]:
    """ "0,2" -> [0, 2]; ValueError saying what is accepted."""
    try:
        numbers = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        numbers = [-1]
    if not numbers or numbers[0] < 0:
        raise ValueError(f"cannot read shards {text!r}: give shard numbers like 0,2")
    return numbers


def _scheme(url: str) -> str:
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else ""


def _scheme_said(scheme: str) -> str:
    return f"{scheme}://" if scheme else "a URL without a scheme"


class WorkerSettings(BaseSettings):
    """Everything a worker needs to know, frozen once built."""

    model_config = SettingsConfigDict(env_prefix="AILEDGER_", frozen=True, extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = "postgresql://127.0.0.1:5432/ailedger"
    stream: str = DEFAULT_STREAM
    group: str = DEFAULT_GROUP

    # Past one machine (docs/scaling.md).
    #: Whether Redis is a cluster: asked of the server (auto), or forced (on, off).
    redis_cluster: str = "auto"
    #: Shards of the stream; None: 1 on a single Redis, 2 per master on a cluster.
    stream_shards: int | None = Field(default=None, ge=1, le=4096)
    #: The shards this worker consumes, e.g. "0,2"; None: every shard.
    shards: str | None = None

    # Consumer loop.
    batch_size: int = Field(default=2000, ge=1, le=50_000)
    block_ms: int = Field(default=1_000, ge=1)
    claim_idle_ms: int = Field(default=60_000, ge=1)
    claim_every_s: float = Field(default=5.0, gt=0)
    max_deliveries: int = Field(default=5, ge=1)
    heartbeat_ttl_s: int = Field(default=30, ge=1)
    #: ``worker --burst`` gives up, exiting 1, once a server has been away this long.
    burst_deadline_s: float = Field(default=60.0, gt=0)

    # Scoring.
    confidence_weights: dict[str, Weight] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    default_threshold: Threshold = DEFAULT_THRESHOLD
    task_thresholds: dict[str, Threshold] = Field(default_factory=dict)

    # Pricing: how long a price looked up once is trusted before Postgres is asked again.
    price_cache_ttl_s: float = Field(default=60.0, ge=0)

    # Observability: Prometheus /metrics on workers.
    #: Port of a worker's /metrics endpoint; None or 0: not served.
    metrics_port: int | None = Field(default=None, ge=0, le=65_535)
    metrics_host: str = "0.0.0.0"

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        return check_redis_url(value)

    @field_validator("redis_cluster")
    @classmethod
    def _redis_cluster(cls, value: str) -> str:
        return cluster_mode(value)

    @field_validator("shards")
    @classmethod
    def _shards(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parse_shard_list(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return check_database_url(value)

    @field_validator("confidence_weights")
    @classmethod
    def _weights(cls, value: Mapping[str, Decimal]) -> Mapping[str, Decimal]:
        if not sum(value.values(), Decimal(0)) > 0:
            raise ValueError(
                "the weights add up to 0, so no score could be computed; give at least one "
                'component a positive weight, e.g. {"model_confidence": 0.4, "completeness": 0.2}'
            )
        return value

    def consumed_shards(self, count: int) -> list[int]:
        """The shard numbers this worker reads, of ``count``: those named, else all."""
        if self.shards is None:
            return list(range(count))
        numbers = parse_shard_list(self.shards)
        beyond = [n for n in numbers if n >= count]
        if beyond:
            raise ValueError(
                f"AILEDGER_SHARDS names shard {beyond[0]} but the stream has {count} shard(s)"
                f" (0 to {count - 1}); name shards below {count} or raise AILEDGER_STREAM_SHARDS"
            )
        return numbers

    def threshold_for(self, task: str) -> Decimal:
        return self.task_thresholds.get(task, self.default_threshold)

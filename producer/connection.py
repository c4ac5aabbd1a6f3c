"""Redis clients as ailedger uses them: explicit timeouts, no hidden retries, cluster or not.

redis-py retries failed commands itself (with backoff) by default; ailedger's
loops retry with their own backoff and must see a failure at once to spool,
log the state change or stop in time, so the library's retries are turned off.

Whether the URL points at a Redis Cluster is asked of the server (``INFO cluster``
→ ``cluster_enabled:1``), so ``AILEDGER_REDIS_URL=redis://node:port`` is all a
deployment sets; ``AILEDGER_REDIS_CLUSTER=on|off`` skips the question. A cluster
client is typed as ``redis.Redis`` here: it speaks the same commands, routed by key.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import redis

CLUSTER_MODES = ("auto", "on", "off")

#: The longest the cluster question may take: a server that accepts connections and
#: never answers must not hold a caller for its whole socket timeout.
PROBE_TIMEOUT_S = 2.0
#: How long an answer is trusted: clients are made often (a reconnect, a CLI command),
#: and a server does not change mode without a restart.
PROBE_TTL_S = 60.0

_answers: dict[str, tuple[bool, float]] = {}


def cluster_mode(value: str | None = None) -> str:
    """``value`` (else ``AILEDGER_REDIS_CLUSTER``, else ``auto``) checked against the modes."""
    mode = (value or os.environ.get("AILEDGER_REDIS_CLUSTER") or "auto").strip().lower()
    if mode not in CLUSTER_MODES:
        raise ValueError(
            f"AILEDGER_REDIS_CLUSTER={mode!r} is not a cluster mode; use auto (ask the server),"
            " on or off"
        )
    return mode


def server_is_cluster(url: str, *, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the server at ``url`` runs in cluster mode; ``redis.RedisError`` if it is away."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    known = _answers.get(url)
    if known is not None and time.monotonic() - known[1] < PROBE_TTL_S:
        return known[0]
    probe = redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )
    try:
        info: dict[str, Any] = probe.info("cluster")
    except redis.ResponseError:
        info = {}  # INFO refused (a restricted managed Redis): not a cluster we can use
    finally:
        probe.close()
    enabled = str(info.get("cluster_enabled", 0)) == "1"
    _answers[url] = (enabled, time.monotonic())
    return enabled


def is_cluster(client: Any) -> bool:
    """Whether ``client`` is a cluster client (``connect()`` gave a ``RedisCluster``)."""
    return hasattr(client, "nodes_manager")


def connect(
    url: str,
    *,
    socket_timeout: float = 5.0,
    connect_timeout: float = 2.0,
    cluster: str | None = None,
    strict: bool = False,
) -> redis.Redis:
    """A client for ``url`` whose every call fails fast instead of retrying on its own.

    A ``RedisCluster`` when the server is a cluster node (or ``cluster="on"``), else a
    ``redis.Redis``. When the server cannot be asked, a plain client is returned, which
    fails on first use as before — unless ``strict``: then the error is raised, for
    callers whose key names depend on the answer (the producer's and workers' shards).

    redis-py is imported here, on first use, not when ``producer`` is imported: it
    pulls in asyncio and more, which would cost every service at start-up.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    mode = cluster_mode(cluster)
    if mode == "auto" and not url.startswith("unix:"):
        try:
            enabled = server_is_cluster(url, timeout=min(connect_timeout, socket_timeout, 2.0))
        except (redis.ConnectionError, redis.TimeoutError):
            if strict:
                raise
            enabled = False
        mode = "on" if enabled else "off"
    if mode == "on":
        from redis.cluster import RedisCluster

        try:
            client = RedisCluster.from_url(
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=connect_timeout,
                health_check_interval=30,
                # No retries of a failed command; the slot map is still refreshed after a
                # failure, so the caller's own retry reaches the node that took over.
                retry=Retry(NoBackoff(), 0),
            )
        except Exception as exc:
            _answers.pop(url, None)  # ask again next time: the server may have changed
            raise redis.ConnectionError(
                f"cannot reach the Redis Cluster at {_where(url)}: {exc}"
            ) from None
        return cast("redis.Redis", client)
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 0),
    )


def _where(url: str) -> str:
    """``host:port`` of ``url``, without the password it may carry."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}"

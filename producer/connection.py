"""Redis clients as ailedger uses them: explicit timeouts, and no hidden retries.

redis-py retries failed commands itself (with backoff) by default; ailedger's
loops retry with their own backoff and must see a failure at once to spool,
log the state change or stop in time, so the library's retries are turned off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis


def connect(url: str, *, socket_timeout: float = 5.0, connect_timeout: float = 2.0) -> redis.Redis:
    """A client for ``url`` whose every call fails fast instead of retrying on its own.

    redis-py is imported here, on first use, not when ``producer`` is imported: it
    pulls in asyncio and more, which would cost every service at start-up.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 0),
    )

"""The one way the suite opens a Redis client, so that an outage is short and clean.

A Redis that is down must fail a call quickly (short connect and read
timeouts), and one that returns must be used again at once: a pooled
connection that died with the old server is retried on a fresh one
instead of failing the first call after the restart.
"""

from __future__ import annotations

from typing import Any

CONNECT_TIMEOUT = 1.0
"""Seconds to open a connection before Redis counts as down."""

READ_TIMEOUT = 2.0
"""Seconds one command may take (``XREAD BLOCK`` callers pass a longer one)."""


def redis_client(url: str, *, read_timeout: float = READ_TIMEOUT) -> Any:
    """An asyncio Redis client for ``url`` that reconnects by itself."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError, TimeoutError

    return Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=read_timeout,
        # One retry on a new connection covers a connection that died with a
        # restarted server; a server that is down still fails within seconds.
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
        retry_on_error=[ConnectionError, TimeoutError, ConnectionResetError],
        health_check_interval=10,
    )

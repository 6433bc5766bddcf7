"""Telling a dependency that is down from a bug.

A call that fails because the database or Redis cannot be reached (down,
restarting, a connection that died with the old server) is answered
UNAVAILABLE with a ``Retry-After``, never INTERNAL: the client may retry,
and the service recovers by itself when the dependency returns.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from grpc import aio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from iotkit.errors import Unavailable

RETRY_AFTER = 5.0
"""Seconds a client is asked to wait before retrying a call that met an outage."""

MESSAGE = "A service this request needs is unavailable; retry shortly"

_DOWN = (
    OperationalError,
    InterfaceError,
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    TimeoutError,
)


def is_outage(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says a dependency could not be reached."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _DOWN):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__ or current.__context__
    return False


# What another service of the suite answers while it starts, stops or waits for its own
# dependencies: the caller's next round will do.
_PASSING_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def is_passing(exc: BaseException) -> bool:
    """True for an outage, or another service answering UNAVAILABLE or not in time."""
    if isinstance(exc, aio.AioRpcError) and exc.code() in _PASSING_CODES:
        return True
    return is_outage(exc)


def log_failed_round(log: logging.Logger, message: str, exc: BaseException, **extra: Any) -> None:
    """Log a background round that failed and will be retried: a line for what passes
    (a dependency down or starting), the traceback only for what may be a bug."""
    if is_passing(exc):
        code = exc.code().name if isinstance(exc, aio.AioRpcError) else None
        log.warning(message, extra={**extra, "error": type(exc).__name__, "code": code})
    else:
        log.warning(message, extra=extra, exc_info=exc)


def outage() -> Unavailable:
    """The error a call that met an outage answers."""
    return Unavailable(MESSAGE, retry_after=RETRY_AFTER)

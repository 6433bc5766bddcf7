"""Telling a dependency that is down from a bug.

A call that fails because the database or Redis cannot be reached (down,
restarting, a connection that died with the old server) is answered
UNAVAILABLE with a ``Retry-After``, never INTERNAL: the client may retry,
and the service recovers by itself when the dependency returns.
"""

from __future__ import annotations

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


def outage() -> Unavailable:
    """The error a call that met an outage answers."""
    return Unavailable(MESSAGE, retry_after=RETRY_AFTER)

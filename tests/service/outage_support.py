"""A database outage at one method of a real store or service, for fault tests that must
not stop the shared PostgreSQL: the driver's own error, raised as SQLAlchemy raises it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pytest
from sqlalchemy.exc import OperationalError


def database_away() -> OperationalError:
    """What a call meets while PostgreSQL restarts."""
    return OperationalError(
        "SELECT", {}, psycopg.OperationalError("server closed the connection unexpectedly")
    )


def fail_first(
    monkeypatch: pytest.MonkeyPatch, owner: type, method: str, times: int
) -> Callable[[], int]:
    """Make ``owner.<method>`` (a coroutine method) meet an outage its first ``times``
    calls, then work; answers a count of the calls."""
    real: Callable[..., Awaitable[Any]] = getattr(owner, method)
    calls = 0

    async def flaky(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls <= times:
            raise database_away()
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(owner, method, flaky)
    return lambda: calls

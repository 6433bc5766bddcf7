"""A lease among replicas: one holder at a time, taken over when the holder goes away.

Two processes are two databases opened on one schema here (each with its own
connections), on PostgreSQL; on SQLite, the only process always holds it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from iotkit.db import Database
from iotkit.leases import AdvisoryLease, AlwaysHeld, lease
from tests.conftest import Backend

PERIOD = 0.05


@pytest.fixture
async def databases(backend: Backend) -> AsyncIterator[list[Database]]:
    opened = [await backend.open("telemetry") for _ in range(2)]
    yield opened
    for database in opened:
        await database.close()


async def holders(leases: list[AdvisoryLease], count: int, within: float = 10) -> list[int]:
    """Which leases are held, once exactly ``count`` are (bounded, never timed)."""
    deadline = time.monotonic() + within
    while sum(one.held for one in leases) != count:
        assert time.monotonic() < deadline, [one.held for one in leases]
        await asyncio.sleep(PERIOD)
    return [k for k, one in enumerate(leases) if one.held]


async def test_one_replica_holds_it_and_another_takes_over_when_it_goes(
    backend: Backend, databases: list[Database]
) -> None:
    if backend.kind == "sqlite":
        assert isinstance(lease(databases[0], "job"), AlwaysHeld)
        return
    leases = [AdvisoryLease(database, "job", period=PERIOD) for database in databases]
    for one in leases:
        one.start()
    try:
        [holder] = await holders(leases, 1)
        # Several checks later, still one holder: the other keeps trying and failing.
        await asyncio.sleep(10 * PERIOD)
        assert await holders(leases, 1) == [holder]
        await leases[holder].stop()
        assert await holders(leases, 1) == [1 - holder]
        # Another name is another lease.
        other = AdvisoryLease(databases[holder], "another job", period=PERIOD)
        other.start()
        await holders([other], 1)
        await other.stop()
    finally:
        for one in leases:
            await one.stop()

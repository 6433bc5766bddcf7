"""A lease that replicas of a service contend for, so that one of them does a job at a time.

On PostgreSQL the lease is a session advisory lock held on a connection of
its own: whoever holds it keeps the connection, and when that process dies
(or its connection does) PostgreSQL frees the lock at once, so there is no
expiry to tune and no clock to trust. The others try again every
``period`` seconds. On SQLite there is one process per database, which
always holds it.

A lease only saves work: a job guarded by one must stay correct when two
processes briefly both believe they hold it (a holder whose connection died
learns so only at its next check).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from iotkit.db import Database
from iotkit.tasks import cancel

log = logging.getLogger(__name__)

PERIOD_SECONDS = 2.0
"""How often a lease is checked (held) or tried again (not held)."""


class Lease(Protocol):
    """Whether this process holds a lease now."""

    @property
    def held(self) -> bool:
        """True while this process holds it."""
        ...

    def start(self) -> None:
        """Start contending for it in the background."""
        ...

    async def stop(self) -> None:
        """Stop contending, and give it up if held."""
        ...


class AlwaysHeld:
    """The lease of a process that is the only one (SQLite)."""

    held = True

    def start(self) -> None:
        """Nothing to contend for."""

    async def stop(self) -> None:
        """Nothing to give up."""


class AdvisoryLease:
    """A lease held as a PostgreSQL session advisory lock; see the module docstring."""

    def __init__(self, database: Database, name: str, *, period: float = PERIOD_SECONDS) -> None:
        self._database = database
        # One lock per schema and name: services and tests with schemas of their own
        # never contend.
        self._key = f"iotsuite-lease:{database.schema or ''}:{name}"
        self._period = period
        self._connection: AsyncConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self.held = False

    def start(self) -> None:
        """Start contending for it in the background."""
        self._task = asyncio.create_task(self._keep(), name=f"lease {self._key}")

    async def stop(self) -> None:
        """Stop contending, and give it up if held (ending its session frees it)."""
        await cancel(self._task)
        self._task = None
        await self._drop()

    async def _keep(self) -> None:
        while True:
            try:
                await self._check()
            except Exception as exc:  # the database away: not held, try again later
                if self.held:
                    log.info("lease lost", extra={"lease": self._key, "error": type(exc).__name__})
                await self._drop()
            await asyncio.sleep(self._period)

    async def _check(self) -> None:
        if self._connection is None:
            connection = await self._database.engine.connect()
            self._connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        if self.held:
            # Still connected means still held: the lock lives as long as the session.
            await self._connection.execute(text("SELECT 1"))
            return
        taken = await self._connection.scalar(
            text("SELECT pg_try_advisory_lock(hashtext(:key))"), {"key": self._key}
        )
        if taken:
            self.held = True
            log.info("lease taken", extra={"lease": self._key})

    async def _drop(self) -> None:
        self.held = False
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                # Discarded, not pooled: a pooled session would keep the lock.
                await connection.invalidate()
                await connection.close()


def lease(database: Database, name: str) -> Lease:
    """The lease ``name`` among the replicas sharing ``database``."""
    if database.kind == "postgresql":
        return AdvisoryLease(database, name)
    return AlwaysHeld()

"""The loop that drains an outbox: wake on demand or on a poll, run rounds, retry with backoff.

A service queues work (emails, webhook calls) in a table of its own and
hands this loop a ``round``: a coroutine that claims what is due, delivers
it and answers how many items it claimed. The loop runs rounds while they
come back full, sleeps until notified or the poll interval passes, and
stops after the round in flight so that nothing is delivered twice.
:class:`Backoff` says when a failed item is due again, or that it is given up;
:func:`claim_due` claims due rows of an outbox table, one sender each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from iotkit.outages import log_failed_round
from iotkit.tasks import finish

log = logging.getLogger(__name__)

RowT = TypeVar("RowT")


async def claim_due(
    sessions: async_sessionmaker[AsyncSession],
    model: type[RowT],
    *,
    pending: str,
    now: datetime,
    lease_until: datetime,
    limit: int,
) -> list[RowT]:
    """Claim up to ``limit`` due rows of an outbox table until ``lease_until``.

    ``model`` has ``id``, ``status`` and ``next_attempt_at`` columns; a row is
    due when its status is ``pending`` and its next attempt has come. Each
    claim is a conditional UPDATE that moves the next attempt to the lease's
    end, so with several replicas each row goes to one sender, and one that
    dies mid-send leaves its row due again when the lease ends.
    """
    table: Any = model
    async with sessions() as session:
        due = list(
            await session.scalars(
                select(table)
                .where(table.status == pending, table.next_attempt_at <= now)
                .order_by(table.next_attempt_at, table.id)
                .limit(limit)
            )
        )
    claimed: list[RowT] = []
    if not due:
        return claimed
    # Every claim of the batch in one transaction: one commit, not one per row (each a
    # wait for SQLite's write lock while the service's other writes hold it).
    async with sessions.begin() as session:
        for row in due:
            result = await session.execute(
                update(table)
                .where(
                    table.id == row.id,
                    table.status == pending,
                    table.next_attempt_at == row.next_attempt_at,
                )
                .values(next_attempt_at=lease_until)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append(row)
    return claimed


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff: ``base`` seconds after the first failure, doubling up to
    ``maximum``; after ``attempts`` failures the item is given up."""

    base: float = 5.0
    maximum: float = 3600.0
    attempts: int = 8

    def delay(self, failures: int) -> float | None:
        """Seconds until the next attempt after ``failures`` failed ones; None to give up."""
        if failures >= self.attempts:
            return None
        return min(self.base * 2 ** (failures - 1), self.maximum)


class OutboxLoop:
    """Runs ``round`` in the background whenever there may be work."""

    def __init__(
        self,
        *,
        round: Callable[[], Awaitable[int]],
        batch: int,
        poll_interval: float,
        name: str,
        stop_within: float,
    ) -> None:
        """``round`` answers how many items it claimed; a full ``batch`` means more may be due.
        ``stop_within`` is how long :meth:`stop` lets the round in flight finish."""
        self._round = round
        self._batch = batch
        self._poll_interval = poll_interval
        self._name = name
        self._stop_within = stop_within
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called: a round delivers no more items."""
        return self._stopping

    def notify(self) -> None:
        """Wake the loop: work was queued."""
        self._wake.set()

    def wake_in(self, delay: float) -> None:
        """Wake the loop after ``delay`` seconds, when that comes before the next poll
        (retries shorter than the poll interval would otherwise wait for it)."""
        if delay < self._poll_interval:
            asyncio.get_running_loop().call_later(max(delay, 0.0), self._wake.set)

    def start(self) -> None:
        """Start the background loop."""
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name=self._name)

    async def stop(self) -> None:
        """Stop after the round in flight; what is still due goes out on the next start."""
        self._stopping = True
        self._wake.set()
        # A delivery that hangs is cut off: its lease lets a later round retry it.
        await finish(self._task, within=self._stop_within)
        self._task = None

    async def _loop(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            self._wake.clear()
            try:
                while not self._stopping and await self._round() == self._batch:
                    pass
            except Exception as exc:  # the next round retries
                log_failed_round(log, f"{self._name} round failed", exc)

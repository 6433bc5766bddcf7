"""Telemetry's chunk table by month, on PostgreSQL: partitions made ahead, dropped whole.

Migration 0002 makes ``chunks`` a table partitioned by range of ``ts_min``
(the time of a chunk's first reading, in microseconds): one partition per UTC
month, named ``chunks_pYYYYMM``, and a default partition for the rest. Here
telemetry keeps that up at run time:

- a write group asks for the months its chunks start in before it inserts
  them (:meth:`ChunkPartitions.ensure`): a month met for the first time gets
  its partition then, under an advisory lock so that replicas make it once;
  making it waits at most :data:`LOCK_TIMEOUT` for ``chunks``, and if it
  cannot, the rows wait in the default partition for the month to be made;
  a periodic job makes this month's and the next ones ahead of time, so that
  live writes never wait on it;
- months before 2000-01 or more than a year ahead get no partition of their
  own: such readings (a device with its clock unset) live in the default
  partition. Should a month be made later while the default partition holds
  some of its rows, they move into it in the same transaction;
- retention drops a month's partition whole when every stream with readings
  in it keeps them for less time than has passed since the month ended
  (:meth:`ChunkPartitions.drop_expired`); the rows of other months go the
  ordinary way, chunk by chunk.

On SQLite every method does nothing: the embedded default has one table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = logging.getLogger(__name__)

FIRST_MONTH = (2000, 1)
"""The earliest month with a partition of its own."""
MONTHS_AHEAD = 12
"""How far past the current month a month may get its partition (later ones: default)."""
MADE_AHEAD = 2
"""How many months after the current one the periodic job makes ahead of time."""
DEFAULT = "chunks_default"
LOCK_TIMEOUT = "SET LOCAL lock_timeout = '2s'"
"""Making or dropping a partition locks ``chunks`` whole: while a transaction keeps it
from doing so, it must not wait long, since every reader and writer of ``chunks`` would
queue behind its request. It gives up instead, and is tried again later."""
RETRY_SECONDS = 60.0
"""How long writes leave a month that could not be made before trying it again."""
_DAY_US = 86_400_000_000


@dataclass(frozen=True, order=True, slots=True)
class Month:
    """A UTC calendar month: the span of one partition."""

    year: int
    month: int

    @classmethod
    def of_micros(cls, micros: int) -> Month:
        """The month a time (microseconds since the epoch) falls in."""
        moment = datetime.fromtimestamp(micros / 1_000_000, UTC)
        return cls(moment.year, moment.month)

    @classmethod
    def of(cls, moment: datetime) -> Month:
        """The month of an aware datetime."""
        moment = moment.astimezone(UTC)
        return cls(moment.year, moment.month)

    def next(self) -> Month:
        """The month after this one."""
        return Month(self.year + 1, 1) if self.month == 12 else Month(self.year, self.month + 1)

    def plus(self, months: int) -> Month:
        """The month ``months`` after this one."""
        month = self
        for _ in range(months):
            month = month.next()
        return month

    @property
    def start_us(self) -> int:
        """The month's first microsecond."""
        return int(datetime(self.year, self.month, 1, tzinfo=UTC).timestamp() * 1_000_000)

    @property
    def table(self) -> str:
        """The name of the month's partition."""
        return f"chunks_p{self.year:04d}{self.month:02d}"


def month_of_table(name: str) -> Month | None:
    """The month a partition's name stands for; None for any other table."""
    digits = name.removeprefix("chunks_p")
    if digits == name or len(digits) != 6 or not digits.isdigit():
        return None
    return Month(int(digits[:4]), int(digits[4:]))


class ChunkPartitions:
    """Makes and drops the monthly partitions of ``chunks`` (PostgreSQL; nothing on SQLite)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._partitioned: bool | None = None
        self._made: set[Month] = set()
        self._retry_at: dict[Month, float] = {}  # months that could not be made, until when

    async def _enabled(self) -> bool:
        if self._partitioned is None:
            async with self._sessions() as session:
                if session.get_bind().dialect.name != "postgresql":
                    self._partitioned = False
                else:
                    kind = await session.scalar(
                        text("SELECT relkind FROM pg_class WHERE oid = to_regclass('chunks')")
                    )
                    self._partitioned = kind == "p"
        return self._partitioned

    async def ensure(self, starts: Iterable[int], *, now: datetime | None = None) -> None:
        """Make the partitions of the months that chunks starting at ``starts`` need."""
        # Bounds first: a timestamp far outside them (any int64 may arrive) has no month.
        first = Month(*FIRST_MONTH).start_us
        end = Month.of(now or datetime.now(UTC)).plus(MONTHS_AHEAD).next().start_us
        wanted = {Month.of_micros(start) for start in starts if first <= start < end}
        wanted -= self._made
        if not wanted or not await self._enabled():
            return
        for month in sorted(wanted):
            if self._retry_at.get(month, 0.0) > time.monotonic():
                continue
            try:
                await self._make(month)
            except DBAPIError as exc:
                self._retry_at[month] = time.monotonic() + RETRY_SECONDS
                # The month's rows go to the default partition meanwhile, and move into the
                # month when it is made (by the next write that meets it, or the job ahead).
                log.warning(
                    "chunk partition not made now",
                    extra={"partition": month.table, "error": type(exc.orig).__name__},
                )

    async def make_ahead(self, *, now: datetime | None = None) -> None:
        """Make this month's partition and the next :data:`MADE_AHEAD` ones."""
        this = Month.of(now or datetime.now(UTC))
        await self.ensure([this.plus(n).start_us for n in range(MADE_AHEAD + 1)], now=now)

    async def _make(self, month: Month) -> None:
        table, start, end = month.table, month.start_us, month.next().start_us
        async with self._sessions.begin() as session:
            # One maker at a time per schema: replicas meeting a new month together.
            await session.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.partitions'))")
            )
            await session.execute(text(LOCK_TIMEOUT))
            exists = await session.scalar(text(f"SELECT to_regclass('{table}') IS NOT NULL"))
            if not exists:
                stranded = await session.scalar(
                    text(
                        f"SELECT EXISTS (SELECT 1 FROM {DEFAULT} "
                        "WHERE ts_min >= :start AND ts_min < :end)"
                    ),
                    {"start": start, "end": end},
                )
                if stranded:
                    await self._make_moving(session, table, start, end)
                else:
                    await session.execute(
                        text(
                            f"CREATE TABLE {table} PARTITION OF chunks "
                            f"FOR VALUES FROM ({start}) TO ({end})"
                        )
                    )
                log.info("chunk partition made", extra={"partition": table})
        self._made.add(month)

    @staticmethod
    async def _make_moving(session: AsyncSession, table: str, start: int, end: int) -> None:
        """Make a month's partition while the default one holds rows of it: PostgreSQL
        refuses a partition whose rows the default holds, so they move over first."""
        await session.execute(text(f"ALTER TABLE chunks DETACH PARTITION {DEFAULT}"))
        await session.execute(
            text(f"CREATE TABLE {table} PARTITION OF chunks FOR VALUES FROM ({start}) TO ({end})")
        )
        await session.execute(
            text(
                f"WITH moved AS (DELETE FROM {DEFAULT} WHERE ts_min >= :start AND ts_min < :end "
                "RETURNING *) INSERT INTO chunks SELECT * FROM moved"
            ),
            {"start": start, "end": end},
        )
        await session.execute(text(f"ALTER TABLE chunks ATTACH PARTITION {DEFAULT} DEFAULT"))

    async def months(self) -> list[Month]:
        """The months that have a partition, oldest first (none on SQLite)."""
        if not await self._enabled():
            return []
        async with self._sessions() as session:
            names = await session.scalars(
                text(
                    "SELECT child.relname FROM pg_inherits "
                    "JOIN pg_class child ON child.oid = pg_inherits.inhrelid "
                    "WHERE pg_inherits.inhparent = to_regclass('chunks')"
                )
            )
            return sorted(m for m in map(month_of_table, names) if m is not None)

    async def drop_expired(self, *, now: datetime | None = None) -> list[str]:
        """Drop each month whose every stream keeps readings for less than the time since
        the month ended; answers the partitions dropped."""
        moment = now or datetime.now(UTC)
        now_us = int(moment.timestamp() * 1_000_000)
        dropped = []
        for month in await self.months():
            end = month.next().start_us
            if end > now_us:
                break
            async with self._sessions.begin() as session:
                await session.execute(
                    text(
                        "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.partitions'))"
                    )
                )
                # A stream that keeps its readings forever (0 days), or not yet long
                # enough, holds the month; a chunk whose stream is gone holds nothing.
                held = await session.scalar(
                    text(
                        f"SELECT EXISTS (SELECT 1 FROM {month.table} c "
                        "JOIN streams s ON s.id = c.stream_id "
                        "WHERE s.retention_days = 0 "
                        "OR :end > :now - CAST(s.retention_days AS BIGINT) * :day)"
                    ),
                    {"end": end, "now": now_us, "day": _DAY_US},
                )
                if held:
                    continue
                await session.execute(text(LOCK_TIMEOUT))
                await session.execute(text(f"DROP TABLE {month.table}"))
            self._made.discard(month)
            dropped.append(month.table)
            log.info("chunk partition dropped by retention", extra={"partition": month.table})
        return dropped

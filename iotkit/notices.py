"""Notices between replicas of a service through PostgreSQL: ``pg_notify`` and ``LISTEN``.

A replica that commits something others must hear of live (telemetry: the
streams a write group wrote; analytics: the anomalies it stored) names it in a
notice sent in the same transaction (:meth:`NoticeChannel.announce`):
PostgreSQL delivers it on commit and never for a rollback. Every replica
listens on the channel (:class:`NoticeListener`) and hands the ids in others'
notices to a callback; its own it skips, having heard those in process. A
listener whose connection drops tells its callback ``None`` once it is back
(something may have been told meanwhile). A notice's payload is the sender's
name and comma-separated ids, as many notices as PostgreSQL's 8,000-byte
limit needs.

SQLite runs one process of each service: nothing is sent and nothing listens.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from iotkit.tasks import cancel

log = logging.getLogger(__name__)

PAYLOAD_BYTES = 7_000
"""Under PostgreSQL's 8,000-byte limit of a notice's payload."""
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)

OnIds = Callable[[Sequence[str] | None], Awaitable[None] | None]
"""What a listener calls with the ids of another replica's notice (None: maybe missed some)."""


def payloads(ids: Iterable[str], *, sender: str) -> list[str]:
    """Payloads naming ``ids``: the sender, then ids, comma-separated, split by size."""
    found: list[str] = []
    current: list[str] = []
    size = len(sender) + 1
    for item in ids:
        if current and size + len(item) + 1 > PAYLOAD_BYTES:
            found.append(f"{sender} {','.join(current)}")
            current, size = [], len(sender) + 1
        current.append(item)
        size += len(item) + 1
    if current:
        found.append(f"{sender} {','.join(current)}")
    return found


def parse(payload: str) -> tuple[str, list[str]]:
    """A payload's sender and ids (none for a payload not of this format)."""
    sender, _, ids = payload.partition(" ")
    return sender, [item for item in ids.split(",") if item]


@dataclass(frozen=True, slots=True)
class NoticeChannel:
    """One replica on a channel: the channel's name and its own name there."""

    name: str
    sender: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def of(cls, schema: str, topic: str) -> NoticeChannel:
        """A new replica's place on the ``topic`` channel of the replicas sharing ``schema``."""
        return cls(f"iot_{topic}_{schema}"[:63])

    async def announce(self, session: AsyncSession, ids: Iterable[str]) -> None:
        """Name ``ids`` to the other replicas when ``session``'s transaction commits."""
        told = [{"c": self.name, "p": p} for p in payloads(ids, sender=self.sender)]
        if told:
            await session.execute(text("SELECT pg_notify(:c, :p)"), told)


class NoticeListener:
    """Listens on a channel and hands other replicas' ids to ``on_ids``."""

    def __init__(self, *, database_url: str, channel: NoticeChannel, on_ids: OnIds) -> None:
        self._conninfo = (
            make_url(database_url)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )
        self._channel = channel
        self._on_ids = on_ids
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        """Set while the channel is listened to (tests wait for it)."""

    def start(self) -> None:
        """Listen in the background until :meth:`stop`."""
        self._task = asyncio.create_task(self._run(), name=f"listen {self._channel.name}")

    async def stop(self) -> None:
        """Stop listening."""
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._listen(reconnected=failures > 0)
            except (psycopg.Error, OSError) as exc:
                self.listening.clear()
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                log.warning(
                    "cannot listen to other replicas' notices; retrying",
                    extra={"channel": self._channel.name, "error": type(exc).__name__},
                )
                await asyncio.sleep(delay)

    async def _tell(self, ids: Sequence[str] | None) -> None:
        try:
            told = self._on_ids(ids)
            if inspect.isawaitable(told):
                await told
        except Exception as exc:  # one notice's trouble must not stop the listening
            log.warning(
                "a notice from another replica could not be handled",
                extra={"channel": self._channel.name, "error": type(exc).__name__},
            )

    async def _listen(self, *, reconnected: bool) -> None:
        async with await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True
        ) as connection:
            await connection.execute(
                sql.SQL("LISTEN {}").format(sql.Identifier(self._channel.name))
            )
            self.listening.set()
            if reconnected:
                await self._tell(None)
            async for notice in connection.notifies():
                sender, ids = parse(notice.payload)
                if sender != self._channel.sender and ids:
                    await self._tell(ids)

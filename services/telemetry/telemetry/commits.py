"""Live readings across telemetry replicas: each commit told to the others (PostgreSQL).

A watcher of a stream is served by one replica, while its device may write
through another (gRPC spreads devices' calls over replicas). So each write
group, in its own transaction, sends a PostgreSQL notification naming the
streams it wrote (``pg_notify``: delivered on commit, never for a rollback).
Every replica listens on its schema's channel; for a stream it has watchers
of, it tells them to catch up from the store after the last reading they sent
(:meth:`ReadingHub.nudge`), which then holds what the other replica committed.
A replica ignores its own notifications: its watchers heard those commits in
process already. After the listening connection was lost and comes back,
every watcher catches up once, for what was told meanwhile.

SQLite runs one telemetry process: nothing is sent and nothing listens.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from iotkit.tasks import cancel

log = logging.getLogger(__name__)

PAYLOAD_BYTES = 7_000
"""Under PostgreSQL's 8,000-byte limit of a notification's payload."""
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)


def channel_of(schema: str) -> str:
    """The channel of the telemetry replicas sharing ``schema``."""
    return f"iot_commits_{schema}"[:63]


@dataclass(frozen=True, slots=True)
class Replica:
    """One replica on the channel: where it tells and hears commits, and its name there
    (the first word of each notification it sends, so that it skips its own)."""

    channel: str
    sender: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def of_schema(cls, schema: str) -> Replica:
        """A new replica among those sharing ``schema``."""
        return cls(channel_of(schema))


def payloads(stream_ids: Iterable[str], *, sender: str) -> list[str]:
    """Notification payloads naming ``stream_ids``: the sender, then ids, comma-separated,
    as many payloads as the size limit needs."""
    found: list[str] = []
    current: list[str] = []
    size = len(sender) + 1
    for stream_id in stream_ids:
        if current and size + len(stream_id) + 1 > PAYLOAD_BYTES:
            found.append(f"{sender} {','.join(current)}")
            current, size = [], len(sender) + 1
        current.append(stream_id)
        size += len(stream_id) + 1
    if current:
        found.append(f"{sender} {','.join(current)}")
    return found


def parse(payload: str) -> tuple[str, list[str]]:
    """A payload's sender and stream ids (none for a payload not of this format)."""
    sender, _, ids = payload.partition(" ")
    return sender, [stream_id for stream_id in ids.split(",") if stream_id]


class Nudgeable(Protocol):
    """What the listener tells (the reading hub): these streams' watchers catch up."""

    def nudge(self, stream_ids: Sequence[str] | None) -> None:
        """Tell the watchers of ``stream_ids`` (of every stream, for None) to catch up."""


class CommitListener:
    """Listens on the replicas' channel and nudges the hub for others' commits."""

    def __init__(self, *, database_url: str, replica: Replica, hub: Nudgeable) -> None:
        self._conninfo = (
            make_url(database_url)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )
        self._replica = replica
        self._hub = hub
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        """Set while the channel is listened to (tests wait for it)."""

    def start(self) -> None:
        """Listen in the background until :meth:`stop`."""
        self._task = asyncio.create_task(self._run(), name="commit-listener")

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
                    "cannot listen to other replicas' commits; retrying",
                    extra={"error": type(exc).__name__, "in_s": delay},
                )
                await asyncio.sleep(delay)

    async def _listen(self, *, reconnected: bool) -> None:
        async with await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True
        ) as connection:
            channel = sql.Identifier(self._replica.channel)
            await connection.execute(sql.SQL("LISTEN {}").format(channel))
            self.listening.set()
            if reconnected:
                self._hub.nudge(None)  # what was told while the connection was down
            async for notification in connection.notifies():
                sender, stream_ids = parse(notification.payload)
                if sender != self._replica.sender and stream_ids:
                    self._hub.nudge(stream_ids)

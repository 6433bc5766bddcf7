"""Revoked sessions for the other services: the list they poll, and the relay to Redis.

Every revocation is written with the session's own revocation (the
``session_revocations`` table), whichever path revoked it: logout, a reused
refresh token, a password change or reset, an administrator. The other
services follow them (``iotkit.revocation``): from auth's
``ListRevokedSessions`` or, with Redis, from the stream the
:class:`RedisRelay` appends every new revocation to.

A cursor is a time that lies :data:`COMMIT_MARGIN` in the past: a revocation
stamped before a slower one but committed after it is answered again rather
than skipped, and followers take repeats in their stride.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from iotkit.redis_client import redis_client
from iotkit.revocation import Revocation, publish
from iotkit.sqltypes import utcnow
from iotkit.tasks import cancel
from iotkit.tokens import LEEWAY_SECONDS
from services.auth.core.store import AuthStore

log = logging.getLogger(__name__)

COMMIT_MARGIN = timedelta(seconds=30)
"""How far in the past a cursor lies: far longer than any revoking transaction takes."""

RELAY_INTERVAL = 0.1
"""Seconds between two reads of new revocations by the relay."""


class RevocationLog:
    """The sessions revoked while their access tokens may still be unexpired."""

    def __init__(
        self, *, store: AuthStore, access_ttl: int, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._store = store
        # Past this, every access token of a revoked session has expired (with the leeway
        # verifiers allow), so the revocation no longer matters.
        self.lifetime = timedelta(seconds=access_ttl + LEEWAY_SECONDS)
        self._clock = clock

    async def since(self, since: datetime | None) -> tuple[list[Revocation], datetime]:
        """Revocations at or after ``since`` that still matter, and the next cursor."""
        now = self._clock()
        oldest = now - self.lifetime
        rows = await self._store.revocations_since(
            since=oldest if since is None else max(since, oldest)
        )
        revocations = [
            Revocation(session_id=sid, until=(at + self.lifetime).timestamp()) for sid, at in rows
        ]
        return revocations, now - COMMIT_MARGIN

    async def purge(self) -> None:
        """Forget revocations that no longer matter."""
        await self._store.purge_revocations(before=self._clock() - self.lifetime)


class RedisRelay:
    """Appends each new revocation to the Redis stream the other services read.

    It reads the revocations from the database rather than being told of them,
    so that none is lost while Redis is down: its cursor moves only once a
    batch is in the stream.
    """

    def __init__(
        self, *, revocations: RevocationLog, redis_url: str, interval: float = RELAY_INTERVAL
    ) -> None:
        self._revocations = revocations
        self._redis = redis_client(redis_url)
        self._interval = interval
        self._published: dict[str, float] = {}
        self._cursor: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    async def relay_once(self) -> int:
        """Publish what is new since the last round; answers how many were new."""
        revocations, cursor = await self._revocations.since(self._cursor)
        new = [r for r in revocations if r.session_id not in self._published]
        if new:
            keep = self._revocations.lifetime.total_seconds()
            await publish(self._redis, new, keep_seconds=keep)
        now = time.time()
        self._published = {s: u for s, u in self._published.items() if u > now}
        self._published.update((r.session_id, r.until) for r in new)
        self._cursor = cursor
        return len(new)

    def start(self) -> None:
        """Start relaying in the background."""
        self._task = asyncio.create_task(self._loop(), name="revocation-relay")

    async def stop(self) -> None:
        """Stop relaying and close the connection."""
        await cancel(self._task)
        self._task = None
        await self._redis.aclose()

    async def _loop(self) -> None:
        failures = 0
        while True:
            try:
                await self.relay_once()
                failures = 0
            except Exception as exc:  # Redis or the database is down: the next round retries
                failures += 1
                if failures == 1 or failures % 100 == 0:
                    log.warning(
                        "could not relay revocations",
                        extra={"error": type(exc).__name__, "failures": failures},
                    )
            await asyncio.sleep(self._interval)

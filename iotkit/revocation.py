"""Revoked sessions, followed by every process that verifies tokens locally.

Auth revokes sessions (logout, a reused refresh token, a password change,
an administrator); the other services verify access tokens with auth's
public keys and would accept a revoked session's tokens until they expire.
So each of them follows the revocations and refuses a token whose ``sid``
is among them, within a second:

- with Redis configured, from the stream ``iot:revocations`` that auth
  appends to (``XREAD BLOCK``, so a revocation arrives as it is written; the
  stream keeps what a follower missed while it was away). The stream is a
  relay, not the record: Redis may lose it (``FLUSHDB``, a restart without
  persistence, eviction), and a process that starts then would find no
  revocation at all. So a follower also reads auth's record once
  (``ListRevokedSessions``, from its database) as it starts, retrying until
  auth answers;
- without Redis, or while Redis is down, by polling auth's
  ``ListRevokedSessions`` every :data:`POLL_INTERVAL` seconds.

Each revocation carries the time after which every token of its session has
expired anyway; it is forgotten then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from iot.auth.v1 import auth_pb2, auth_pb2_grpc
from iotkit.context import Caller
from iotkit.convert import micros
from iotkit.errors import Unavailable
from iotkit.redis_client import redis_client
from iotkit.service_tokens import ServiceTokenSource
from iotkit.tasks import cancel

log = logging.getLogger(__name__)

STREAM = "iot:revocations"
"""The Redis stream of revocations: entries ``{sid, until}`` (``until`` in Unix seconds)."""

POLL_INTERVAL = 0.25
"""Seconds between two polls of auth when Redis is not there."""
WARN_AFTER = 5
"""Polls in a row that fail before a warning (auth may start a moment after the others)."""

BLOCK_MS = 1000
"""How long one ``XREAD`` waits for a new entry before asking again."""

RECORD_RETRY = 1.0
"""Seconds between two tries at auth's record of revocations, until one succeeds (Redis)."""

REDIS_RETRY = 2.0
"""Seconds to poll auth instead after Redis failed, before trying Redis again."""

PRUNE_INTERVAL = 10.0
"""Seconds between two sweeps of the revocations that ran out."""

CALL_DEADLINE = 2.0
"""Seconds one poll of auth may take."""

FIRST_SYNC_WAIT = 2.0
"""How long a call may wait for the first sync of a process that just started."""


@dataclass(frozen=True, slots=True)
class Revocation:
    """A revoked session and the Unix time after which its tokens have all expired."""

    session_id: str
    until: float


Poll = Callable[[Any], Awaitable[tuple[list[Revocation], Any]]]
"""Asks auth for revocations since a cursor (None at first); answers them and the next cursor."""


class RevokedSessions:
    """The revoked sessions this process knows of, each until its tokens expire."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._until: dict[str, float] = {}
        self._clock = clock
        self._pruned_at = clock()

    def add(self, revocations: Iterable[Revocation]) -> None:
        """Remember ``revocations`` (again, harmlessly) and forget those that ran out."""
        now = self._clock()
        for revocation in revocations:
            if revocation.until > now:
                self._until[revocation.session_id] = revocation.until
        if now - self._pruned_at >= PRUNE_INTERVAL:
            self._until = {sid: until for sid, until in self._until.items() if until > now}
            self._pruned_at = now

    def __contains__(self, session_id: str) -> bool:
        until = self._until.get(session_id)
        return until is not None and until > self._clock()

    def __len__(self) -> int:
        return len(self._until)


class RevocationFollower:
    """Follows revocations in the background and answers whether a caller's session is live.

    ``poll`` reaches auth; ``redis_url``, when set, is tried first. Until the
    first sync succeeds a token with a session cannot be judged, so
    :meth:`session_is_live` waits briefly for it, then answers UNAVAILABLE.
    """

    def __init__(
        self,
        *,
        poll: Poll,
        redis_url: str | None = None,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.revoked = RevokedSessions()
        self._poll = poll
        self._redis_url = redis_url
        self._interval = poll_interval
        self._cursor: Any = None
        self._last_id = "0-0"
        self._synced = asyncio.Event()
        self._recorded = asyncio.Event()
        self._record_wait_until = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def recorded(self) -> bool:
        """True once auth's own record of revocations has been read (not only the stream)."""
        return self._recorded.is_set()

    @property
    def synced(self) -> bool:
        """True once the revocations have been read at least once."""
        return self._synced.is_set()

    async def session_is_live(self, caller: Caller) -> bool:
        """False when the caller's session was revoked (the interceptor's session check)."""
        if caller.session_id is None:
            return True
        left = self._record_wait_until - time.monotonic()
        if self._redis_url and not self._recorded.is_set() and left > 0:
            # Just started: the stream alone may have lost revocations, and auth's record
            # is normally a moment away; past this, the stream serves while auth is down.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._recorded.wait(), left)
        if not self._synced.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._synced.wait(), FIRST_SYNC_WAIT)
            if not self._synced.is_set():
                raise Unavailable("Revoked sessions are not known yet; retry shortly")
        return caller.session_id not in self.revoked

    def start(self) -> None:
        """Start following in the background."""
        self._record_wait_until = time.monotonic() + FIRST_SYNC_WAIT
        self._task = asyncio.create_task(self._run(), name="revocation-follower")

    async def stop(self) -> None:
        """Stop following."""
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        redis = None
        record = None
        if self._redis_url:
            redis = redis_client(self._redis_url, read_timeout=BLOCK_MS / 1000 + 2)
            # Beside the stream, which Redis may have lost: a token judged before auth's
            # record is read is judged by the stream alone (auth down at the same time).
            record = asyncio.create_task(self._read_record(), name="revocation-record")
        redis_after = 0.0
        failures = 0
        try:
            while True:
                if redis is not None and time.monotonic() >= redis_after:
                    try:
                        await self._follow_redis(redis)
                    except Exception as exc:  # Redis went away: auth answers meanwhile
                        log.warning(
                            "revocation stream unreachable, polling auth",
                            extra={"error": type(exc).__name__},
                        )
                        redis_after = time.monotonic() + REDIS_RETRY
                try:
                    await self.poll_once()
                    failures = 0
                except Exception as exc:  # auth unreachable: keep what is known, try again
                    failures += 1
                    # Not the first miss: as a suite starts, auth may answer a moment after
                    # the others (a warning there only alarmed newcomers); a lasting outage
                    # is said within a second or two, and then every 40 polls.
                    if failures == WARN_AFTER or failures % 40 == 0:
                        log.warning(
                            "could not read revoked sessions from auth",
                            extra={"error": type(exc).__name__, "failures": failures},
                        )
                await asyncio.sleep(self._interval)
        finally:
            await cancel(record)
            if redis is not None:
                await redis.aclose()

    async def _read_record(self) -> None:
        """Read auth's record of the revocations once, retrying until auth answers."""
        failures = 0
        while not self._recorded.is_set():
            try:
                await self.poll_once()
                return
            except Exception as exc:  # auth unreachable: the stream is followed meanwhile
                failures += 1
                if failures == WARN_AFTER or failures % 40 == 0:
                    log.warning(
                        "could not read revoked sessions from auth",
                        extra={"error": type(exc).__name__, "failures": failures},
                    )
            await asyncio.sleep(RECORD_RETRY)

    async def poll_once(self) -> None:
        """Ask auth once for revocations since the cursor."""
        revocations, self._cursor = await self._poll(self._cursor)
        self.revoked.add(revocations)
        self._recorded.set()
        self._synced.set()

    async def _follow_redis(self, redis: Any) -> None:
        """Read the stream until Redis fails: what is there first, then each new entry."""
        while True:
            answer = await redis.xread({STREAM: self._last_id}, block=BLOCK_MS, count=1000)
            for _, entries in answer or ():
                for entry_id, fields in entries:
                    self._last_id = _text(entry_id)
                    self.revoked.add([_revocation(fields)])
            self._synced.set()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _revocation(fields: dict[Any, Any]) -> Revocation:
    values = {_text(key): _text(value) for key, value in fields.items()}
    return Revocation(session_id=values.get("sid", ""), until=float(values.get("until", 0)))


async def publish(redis: Any, revocations: Iterable[Revocation], *, keep_seconds: float) -> None:
    """Append ``revocations`` to the stream, trimming entries older than ``keep_seconds``."""
    oldest_ms = int((time.time() - keep_seconds) * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        for revocation in revocations:
            pipe.xadd(
                STREAM,
                {"sid": revocation.session_id, "until": f"{revocation.until:.3f}"},
                minid=oldest_ms,
                approximate=True,
            )
        await pipe.execute()


def remote_revocations(channel: Any, tokens: ServiceTokenSource) -> Poll:
    """Polls auth's ``ListRevokedSessions`` on ``channel`` with this process's service token."""
    stub = auth_pb2_grpc.AuthServiceStub(channel)

    async def poll(cursor: Any) -> tuple[list[Revocation], Any]:
        answer = await stub.ListRevokedSessions(
            auth_pb2.ListRevokedSessionsRequest(since=cursor),
            timeout=CALL_DEADLINE,
            metadata=await tokens.metadata(),
        )
        revocations = [
            Revocation(session_id=s.session_id, until=micros(s.until) / 1_000_000)
            for s in answer.sessions
        ]
        return revocations, answer.cursor

    return poll

"""The caller's security log and sessions (seed 001 SECURITY): reading the log,
listing sessions with their device, ending one or all the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from iotkit.context import Caller
from iotkit.errors import NotFound, Unauthenticated
from iotkit.listing import PageRequest, check_page
from iotkit.sqltypes import utcnow
from iotkit.validation import Violations
from services.auth import rules
from services.auth.account import LoginSession
from services.auth.core.store import AuthStore
from services.auth.security.store import SecurityLog, SessionStore
from services.auth.security.user_agents import device_info
from services.auth.security.values import Action, LogPage


@dataclass(frozen=True, slots=True)
class SessionView:
    """A live session as its owner sees it."""

    session: LoginSession
    device_info: str
    is_current: bool


class SecurityService:
    """Security log and sessions of the caller."""

    def __init__(
        self,
        *,
        store: AuthStore,
        sessions: SessionStore,
        log: SecurityLog,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._sessions = sessions
        self._log = log
        self._clock = clock

    async def logs(
        self, *, caller: Caller, page: int, limit: int, action: str
    ) -> tuple[LogPage, PageRequest]:
        """A page of the caller's security log, newest first."""
        violations = Violations()
        request = check_page(violations, page, limit)
        violations.raise_if_any()
        found = await self._log.page(user_id=caller.subject, page=request, action=action.strip())
        return found, request

    async def sessions(self, *, caller: Caller) -> list[SessionView]:
        """The caller's live sessions, newest first, the current one marked."""
        live = await self._sessions.live_sessions(user_id=caller.subject, now=self._clock())
        # The parser compiles its patterns on first use: keep that off the event loop.
        devices = await asyncio.to_thread(lambda: [device_info(s.user_agent) for s in live])
        return [
            SessionView(session, device, session.id == caller.session_id)
            for session, device in zip(live, devices, strict=True)
        ]

    async def revoke(self, *, caller: Caller, session_id: str) -> str:
        """End one of the caller's live sessions; anyone else's is NOT_FOUND."""
        now = self._clock()
        session = None
        if rules.is_uuid(session_id):
            session = await self._store.session_by_id(session_id=session_id)
        if session is None or session.user_id != caller.subject or not session.is_live(now):
            raise NotFound("Session not found")
        if not await self._store.revoke_session(session_id=session.id, reason="revoked", now=now):
            raise NotFound("Session not found")
        await self._log.record(
            user_id=caller.subject,
            action=Action.SESSION_REVOKED,
            now=now,
            details={"session_id": session.id, "current": session.id == caller.session_id},
        )
        return session.id

    async def revoke_others(self, *, caller: Caller) -> int:
        """End every session of the caller but the current one; answers how many."""
        if caller.session_id is None:
            raise Unauthenticated("Invalid or expired token")
        now = self._clock()
        revoked = await self._store.revoke_user_sessions(
            user_id=caller.subject, reason="revoked", now=now, keep=caller.session_id
        )
        await self._log.record(
            user_id=caller.subject,
            action=Action.SESSIONS_REVOKED,
            now=now,
            details={"revoked": revoked},
        )
        return revoked

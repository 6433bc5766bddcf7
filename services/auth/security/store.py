"""The queries of ``SecurityService`` (protos/iot/auth/v1/security.proto): the security log
(what happened to each account, from where, and whether it succeeded) and the listing of
a user's sessions.

Every event keeps the client's address and user agent (forwarded by the
gateway). Details hold reasons and changed field names, never a secret. The
``sessions`` table is one of auth's core models (``services.auth.core.store``);
opening and ending sessions are queries of the core API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from iotkit.context import current_client
from iotkit.listing import PageRequest, fetch_page
from iotkit.sqltypes import UtcDateTime
from services.auth.account import LoginSession
from services.auth.core.store import Base, SessionRow, new_id, to_session
from services.auth.security.values import LogPage, SecurityEvent


class SecurityEventRow(Base):
    """One event of one user's security log."""

    __tablename__ = "security_events"
    __table_args__ = (Index("ix_security_events_user_time", "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(40))
    success: Mapped[bool] = mapped_column(Boolean)
    ip_address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(512), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


def to_event(row: SecurityEventRow) -> SecurityEvent:
    """The domain value of an event row."""
    return SecurityEvent(
        id=row.id,
        user_id=row.user_id,
        action=row.action,
        success=row.success,
        ip_address=row.ip_address,
        user_agent=row.user_agent,
        details=dict(row.details),
        created_at=row.created_at,
    )


class SecurityLog:
    """Records events for the current request's client, and reads them back."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def record(
        self,
        *,
        user_id: str,
        action: str,
        now: datetime,
        success: bool = True,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Log ``action`` for ``user_id`` with the address and agent of the current RPC."""
        ip_address, user_agent = current_client()
        async with self._sessions.begin() as session:
            session.add(
                SecurityEventRow(
                    id=new_id(),
                    user_id=user_id,
                    action=action,
                    success=success,
                    ip_address=ip_address[:64],
                    user_agent=user_agent[:512],
                    details=details or {},
                    created_at=now,
                )
            )

    async def page(self, *, user_id: str, page: PageRequest, action: str = "") -> LogPage:
        """A page of a user's events, newest first (ties by id)."""
        conditions: list[Any] = [SecurityEventRow.user_id == user_id]
        if action:
            conditions.append(SecurityEventRow.action == action)
        async with self._sessions() as session:
            rows, total = await fetch_page(
                session,
                select(SecurityEventRow)
                .where(*conditions)
                .order_by(SecurityEventRow.created_at.desc(), SecurityEventRow.id.desc()),
                offset=page.offset,
                limit=page.limit,
            )
            return LogPage([to_event(row) for row in rows], int(total or 0))

    async def last_incident(self, *, user_id: str) -> datetime | None:
        """When the user's latest failure event happened, if any."""
        async with self._sessions() as session:
            return await session.scalar(
                select(func.max(SecurityEventRow.created_at)).where(
                    SecurityEventRow.user_id == user_id, SecurityEventRow.success.is_(False)
                )
            )


class SessionStore:
    """Listing a user's sessions: the live ones for the security page, all for an export."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def live_sessions(self, *, user_id: str, now: datetime) -> list[LoginSession]:
        """A user's unrevoked, unexpired sessions, newest first."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(SessionRow)
                .where(
                    SessionRow.user_id == user_id,
                    SessionRow.revoked_at.is_(None),
                    SessionRow.expires_at > now,
                )
                .order_by(SessionRow.created_at.desc(), SessionRow.id)
            )
            return [to_session(row) for row in rows]

    async def sessions_of(self, *, user_id: str) -> list[LoginSession]:
        """Every session a user ever opened, newest first."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(SessionRow)
                .where(SessionRow.user_id == user_id)
                .order_by(SessionRow.created_at.desc(), SessionRow.id)
            )
            return [to_session(row) for row in rows]

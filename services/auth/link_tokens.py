"""Single-use tokens sent in email links: email verification and password reset.

Only the SHA-256 digest of a token is stored. A token works once, until it
expires, and issuing a new one for the same purpose retires the older ones.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from iotkit.sqltypes import UtcDateTime
from services.auth.core.store import Base, new_id

VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"


class LinkTokenRow(Base):
    """One token sent in a link, by its digest."""

    __tablename__ = "link_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class LinkTokenStore:
    """Issuing, consuming and inspecting link tokens."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def issue(
        self, *, user_id: str, purpose: str, token_digest: str, now: datetime, expires_at: datetime
    ) -> None:
        """Record a new token and retire the user's unused ones of the same purpose."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(LinkTokenRow)
                .where(
                    LinkTokenRow.user_id == user_id,
                    LinkTokenRow.purpose == purpose,
                    LinkTokenRow.used_at.is_(None),
                )
                .values(used_at=now)
            )
            session.add(
                LinkTokenRow(
                    id=new_id(),
                    user_id=user_id,
                    purpose=purpose,
                    token_digest=token_digest,
                    created_at=now,
                    expires_at=expires_at,
                )
            )

    async def consume(self, *, token_digest: str, purpose: str, now: datetime) -> str | None:
        """Use a live token once; answers its user, or None when unknown, used or expired.

        The conditional UPDATE lets exactly one of two concurrent uses win.
        """
        async with self._sessions.begin() as session:
            row = await session.scalar(
                select(LinkTokenRow).where(
                    LinkTokenRow.token_digest == token_digest, LinkTokenRow.purpose == purpose
                )
            )
            if row is None or row.used_at is not None or row.expires_at <= now:
                return None
            result = await session.execute(
                update(LinkTokenRow)
                .where(LinkTokenRow.id == row.id, LinkTokenRow.used_at.is_(None))
                .values(used_at=now)
            )
            return row.user_id if result.rowcount == 1 else None  # type: ignore[attr-defined]

    async def pending_expiry(self, *, user_id: str, purpose: str, now: datetime) -> datetime | None:
        """When the user's live token of ``purpose`` expires, or None when there is none."""
        async with self._sessions() as session:
            return await session.scalar(
                select(LinkTokenRow.expires_at)
                .where(
                    LinkTokenRow.user_id == user_id,
                    LinkTokenRow.purpose == purpose,
                    LinkTokenRow.used_at.is_(None),
                    LinkTokenRow.expires_at > now,
                )
                .order_by(LinkTokenRow.expires_at.desc())
                .limit(1)
            )

    async def purge(self, *, before: datetime) -> int:
        """Delete tokens used or expired before ``before``; answers how many."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(LinkTokenRow).where(
                    or_(LinkTokenRow.expires_at < before, LinkTokenRow.used_at < before)
                )
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

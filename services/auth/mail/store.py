"""The email outbox: messages waiting to be sent, with their attempts.

Requests only add rows; the sender (``mailer``) delivers them in the
background and retries with backoff. Bodies hold links with tokens, so they
are stored sealed and wiped once the message is delivered.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, LargeBinary, String, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from iotkit.mail import LOGGED as LOGGED
from iotkit.mail import SENT as SENT
from iotkit.outbox import claim_due
from iotkit.sqltypes import UtcDateTime
from services.auth.core.store import Base, new_id

PENDING, FAILED = "pending", "failed"


class OutboxRow(Base):
    """One email to send."""

    __tablename__ = "email_outbox"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(32))
    to_address: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(255))
    sealed_body: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default=PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)


class OutboxStore:
    """Queue, claim and settle outgoing emails."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def enqueue(
        self, *, kind: str, to_address: str, subject: str, sealed_body: bytes, now: datetime
    ) -> str:
        """Queue an email for sending now; answers its id."""
        row = OutboxRow(
            id=new_id(),
            kind=kind,
            to_address=to_address,
            subject=subject,
            sealed_body=sealed_body,
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        async with self._sessions.begin() as session:
            session.add(row)
        return row.id

    async def pending_count(self) -> int:
        """How many emails wait to be sent (due or retrying later)."""
        async with self._sessions() as session:
            count = await session.scalar(
                select(func.count()).select_from(OutboxRow).where(OutboxRow.status == PENDING)
            )
        return int(count or 0)

    async def claim_due(
        self, *, now: datetime, lease_until: datetime, limit: int
    ) -> list[OutboxRow]:
        """Claim up to ``limit`` due emails until ``lease_until`` (one sender each)."""
        return await claim_due(
            self._sessions,
            OutboxRow,
            pending=PENDING,
            now=now,
            lease_until=lease_until,
            limit=limit,
        )

    async def settle(self, *, email_id: str, status: str, now: datetime) -> None:
        """Record a delivery (``sent`` or ``logged``) and wipe the body with its link."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.id == email_id)
                .values(
                    status=status,
                    sent_at=now,
                    sealed_body=b"",
                    attempts=OutboxRow.attempts + 1,
                    last_error=None,
                )
            )

    async def retry_later(self, *, email_id: str, error: str, retry_at: datetime | None) -> None:
        """Record a failed attempt: due again at ``retry_at``, or given up when None."""
        values: dict[str, object] = {"attempts": OutboxRow.attempts + 1, "last_error": error[:200]}
        if retry_at is None:
            values.update(status=FAILED, sealed_body=b"")
        else:
            values["next_attempt_at"] = retry_at
        async with self._sessions.begin() as session:
            await session.execute(
                update(OutboxRow).where(OutboxRow.id == email_id).values(**values)
            )

    async def get(self, *, email_id: str) -> OutboxRow | None:
        """One email by id."""
        async with self._sessions() as session:
            return await session.get(OutboxRow, email_id)

    async def purge(self, *, before: datetime) -> int:
        """Delete delivered or abandoned emails created before ``before``."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(OutboxRow).where(OutboxRow.status != PENDING, OutboxRow.created_at < before)
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

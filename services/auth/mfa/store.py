"""MFA state: the sealed TOTP secret, the last step used, and hashed recovery codes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from iotkit.sqltypes import UtcDateTime
from services.auth.core.store import Base, UserRow, new_id


class RecoveryCodeRow(Base):
    """One recovery code, by its keyed digest; ``used_at`` is set when it is spent."""

    __tablename__ = "recovery_codes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class MfaStore:
    """Queries over a user's MFA state."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def pending_secret(self, *, user_id: str) -> bytes | None:
        """The sealed secret awaiting confirmation, if setup was started."""
        async with self._sessions() as session:
            return await session.scalar(select(UserRow.totp_pending).where(UserRow.id == user_id))

    async def live_secret(self, *, user_id: str) -> bytes | None:
        """The sealed secret that login codes are checked against, while MFA is on."""
        async with self._sessions() as session:
            return await session.scalar(select(UserRow.totp_secret).where(UserRow.id == user_id))

    async def set_pending(self, *, user_id: str, sealed_secret: bytes) -> None:
        """Store a secret awaiting confirmation (replacing any earlier one)."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(UserRow).where(UserRow.id == user_id).values(totp_pending=sealed_secret)
            )

    async def use_step(self, *, user_id: str, step: int) -> bool:
        """Record that a code of ``step`` was accepted; False when that step (or a later one)
        was used already: a replay.

        One conditional UPDATE, so two concurrent uses of one code cannot both win.
        """
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(UserRow)
                .where(
                    UserRow.id == user_id,
                    or_(
                        UserRow.totp_last_step.is_(None),
                        UserRow.totp_last_step < step,
                    ),
                )
                .values(totp_last_step=step)
            )
            return result.rowcount == 1  # type: ignore[attr-defined]

    async def enable(
        self, *, user_id: str, sealed_secret: bytes, code_digests: list[str], now: datetime
    ) -> None:
        """Make the pending secret the live one and store fresh recovery codes."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(UserRow)
                .where(UserRow.id == user_id)
                .values(totp_secret=sealed_secret, totp_pending=None)
            )
            await session.execute(
                update(UserRow)
                .where(UserRow.id == user_id)
                .values(mfa_enabled=True, updated_at=now)
            )
            await session.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.user_id == user_id))
            session.add_all(
                RecoveryCodeRow(id=new_id(), user_id=user_id, code_digest=d, created_at=now)
                for d in code_digests
            )

    async def disable(self, *, user_id: str, now: datetime) -> None:
        """Forget the secret and the recovery codes."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(UserRow)
                .where(UserRow.id == user_id)
                .values(totp_secret=None, totp_pending=None)
            )
            await session.execute(
                update(UserRow)
                .where(UserRow.id == user_id)
                .values(mfa_enabled=False, updated_at=now)
            )
            await session.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.user_id == user_id))

    async def replace_recovery_codes(
        self, *, user_id: str, code_digests: list[str], now: datetime
    ) -> None:
        """Replace every recovery code of a user."""
        async with self._sessions.begin() as session:
            await session.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.user_id == user_id))
            session.add_all(
                RecoveryCodeRow(id=new_id(), user_id=user_id, code_digest=d, created_at=now)
                for d in code_digests
            )

    async def spend_recovery_code(self, *, user_id: str, code_digest: str, now: datetime) -> bool:
        """Use an unused recovery code once; False when it is unknown or spent."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(RecoveryCodeRow)
                .where(
                    RecoveryCodeRow.user_id == user_id,
                    RecoveryCodeRow.code_digest == code_digest,
                    RecoveryCodeRow.used_at.is_(None),
                )
                .values(used_at=now)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

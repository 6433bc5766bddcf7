"""Prepared exports of a user's data, kept until their download link expires."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String, delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from iotkit.sqltypes import UtcDateTime
from services.auth.core.store import Base, new_id
from services.auth.data.values import ExportFile


class ExportRow(Base):
    """One prepared file."""

    __tablename__ = "data_exports"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    file_name: Mapped[str] = mapped_column(String(100))
    content_type: Mapped[str] = mapped_column(String(100))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class ExportStore:
    """Keeping and serving prepared exports."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def add(
        self,
        *,
        user_id: str,
        file_name: str,
        content_type: str,
        content: bytes,
        now: datetime,
        expires_at: datetime,
    ) -> str:
        """Keep a prepared file; answers its id."""
        row = ExportRow(
            id=new_id(),
            user_id=user_id,
            file_name=file_name,
            content_type=content_type,
            content=content,
            created_at=now,
            expires_at=expires_at,
        )
        async with self._sessions.begin() as session:
            session.add(row)
        return row.id

    async def get(self, *, export_id: str) -> ExportFile | None:
        """A prepared file by id."""
        async with self._sessions() as session:
            row = await session.get(ExportRow, export_id)
            if row is None:
                return None
            return ExportFile(
                id=row.id,
                user_id=row.user_id,
                file_name=row.file_name,
                content_type=row.content_type,
                created_at=row.created_at,
                expires_at=row.expires_at,
                content=row.content,
            )

    async def purge(self, *, now: datetime) -> int:
        """Delete files whose links have expired; answers how many."""
        async with self._sessions.begin() as session:
            result = await session.execute(delete(ExportRow).where(ExportRow.expires_at <= now))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

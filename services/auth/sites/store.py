"""Accounts and their upload sites (seed 002); a site's client secret is stored as a digest."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from iotkit import reasons
from iotkit.errors import AlreadyExists
from iotkit.listing import PageRequest, contains, fetch_page
from iotkit.sqltypes import UtcDateTime
from services.auth.core.store import Base, new_id


class AccountRow(Base):
    """An account that owns upload sites."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    max_concurrent_batches: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SiteRow(Base):
    """An upload site; ``secret_digest`` is the SHA-256 of its client secret."""

    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    domain: Mapped[str] = mapped_column(String(253), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    secret_digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    secret_rotated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SiteStore:
    """Queries over accounts and sites."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def add_account(
        self, *, email: str, name: str, max_concurrent_batches: int, now: datetime
    ) -> AccountRow:
        """Create an account; raises AlreadyExists for a taken email."""
        row = AccountRow(
            id=new_id(),
            email=email,
            name=name,
            is_active=True,
            max_concurrent_batches=max_concurrent_batches,
            created_at=now,
            updated_at=now,
        )
        try:
            async with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError as exc:
            raise AlreadyExists(
                "An account with this email already exists", reason=reasons.ACCOUNT_EXISTS
            ) from exc
        return row

    async def account(self, *, account_id: str) -> AccountRow | None:
        """An account by id."""
        async with self._sessions() as session:
            return await session.get(AccountRow, account_id)

    async def accounts(
        self, *, page: PageRequest, search: str = ""
    ) -> tuple[list[AccountRow], int]:
        """A page of accounts, newest first (ties by id), with the total that match."""
        conditions: list[Any] = []
        if search:
            conditions.append(
                or_(contains(AccountRow.name, search), contains(AccountRow.email, search))
            )
        async with self._sessions() as session:
            return await fetch_page(
                session,
                select(AccountRow)
                .where(*conditions)
                .order_by(AccountRow.created_at.desc(), AccountRow.id),
                offset=page.offset,
                limit=page.limit,
            )

    async def update_account(
        self, *, account_id: str, now: datetime, changes: dict[str, Any]
    ) -> AccountRow | None:
        """Apply ``changes`` (column: value) to an account; answers it."""
        async with self._sessions.begin() as session:
            row = await session.get(AccountRow, account_id, with_for_update=True)
            if row is None:
                return None
            for name, value in changes.items():
                setattr(row, name, value)
            row.updated_at = now
            return row

    async def add_site(
        self, *, account_id: str, domain: str, name: str, secret_digest: str, now: datetime
    ) -> SiteRow:
        """Create a site; raises AlreadyExists for a taken domain."""
        row = SiteRow(
            id=new_id(),
            account_id=account_id,
            domain=domain,
            name=name,
            is_active=True,
            secret_digest=secret_digest,
            created_at=now,
            updated_at=now,
            secret_rotated_at=now,
        )
        try:
            async with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError as exc:
            raise AlreadyExists(
                "Domain is already registered", reason=reasons.DOMAIN_TAKEN
            ) from exc
        return row

    async def site(self, *, site_id: str) -> SiteRow | None:
        """A site by id."""
        async with self._sessions() as session:
            return await session.get(SiteRow, site_id)

    async def site_by_domain(self, *, domain: str) -> SiteRow | None:
        """A site by its (lower-cased) domain."""
        async with self._sessions() as session:
            return await session.scalar(select(SiteRow).where(SiteRow.domain == domain))

    async def sites(self, *, account_id: str, page: PageRequest) -> tuple[list[SiteRow], int]:
        """A page of an account's sites, newest first (ties by id)."""
        async with self._sessions() as session:
            return await fetch_page(
                session,
                select(SiteRow)
                .where(SiteRow.account_id == account_id)
                .order_by(SiteRow.created_at.desc(), SiteRow.id),
                offset=page.offset,
                limit=page.limit,
            )

    async def update_site(
        self, *, site_id: str, now: datetime, changes: dict[str, Any]
    ) -> SiteRow | None:
        """Apply ``changes`` (column: value) to a site; answers it."""
        async with self._sessions.begin() as session:
            row = await session.get(SiteRow, site_id, with_for_update=True)
            if row is None:
                return None
            for name, value in changes.items():
                setattr(row, name, value)
            row.updated_at = now
            return row

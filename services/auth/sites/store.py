"""Accounts and their upload sites (seed 002); a site's client secret is stored as a digest.

An account may name the user who owns it (``account_owners``): its sites upload
readings for that user's devices.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, column_property, mapped_column

from iotkit import reasons
from iotkit.errors import AlreadyExists
from iotkit.listing import PageRequest, contains, fetch_page
from iotkit.sqltypes import UtcDateTime
from services.auth.core.store import Base, UserRow, new_id
from services.auth.sites.values import Site, SiteAccount


class AccountOwnerRow(Base):
    """The user who owns an account; its sites write that user's devices.

    It came as a table when the schema could gain tables but not columns. Its
    natural home is a column of ``accounts``, but not yet folded (README,
    "Databases made by an older version"): on SQLite a foreign-key column can
    only be dropped, for the downgrade, by rebuilding ``accounts``, which would
    cascade-delete its sites.
    """

    __tablename__ = "account_owners"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)


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
    # Read with the row from ``account_owners``; None when the account names no owner.
    owner_user_id: Mapped[str | None] = column_property(
        select(AccountOwnerRow.user_id)
        .where(AccountOwnerRow.account_id == id)
        .correlate_except(AccountOwnerRow)
        .scalar_subquery()
    )


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


def to_account(row: AccountRow) -> SiteAccount:
    """The domain value of an account row (with its owner)."""
    return SiteAccount(
        id=row.id,
        email=row.email,
        name=row.name,
        is_active=row.is_active,
        max_concurrent_batches=row.max_concurrent_batches,
        created_at=row.created_at,
        updated_at=row.updated_at,
        owner_user_id=row.owner_user_id,
    )


def to_site(row: SiteRow) -> Site:
    """The domain value of a site row."""
    return Site(
        id=row.id,
        account_id=row.account_id,
        domain=row.domain,
        name=row.name,
        is_active=row.is_active,
        created_at=row.created_at,
        updated_at=row.updated_at,
        secret_rotated_at=row.secret_rotated_at,
        secret_digest=row.secret_digest,
    )


class SiteStore:
    """Queries over accounts and sites."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def add_account(
        self,
        *,
        email: str,
        name: str,
        max_concurrent_batches: int,
        owner_user_id: str | None,
        now: datetime,
    ) -> SiteAccount:
        """Create an account (with its owner); raises AlreadyExists for a taken email."""
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
                if owner_user_id:
                    await session.flush()  # the account row first: the owner row refers to it
                    session.add(AccountOwnerRow(account_id=row.id, user_id=owner_user_id))
        except IntegrityError as exc:
            raise AlreadyExists(
                "An account with this email already exists", reason=reasons.ACCOUNT_EXISTS
            ) from exc
        # Read back, so that the owner (a column of another table) is loaded with it.
        stored = await self.account(account_id=row.id)
        assert stored is not None
        return stored

    async def user_exists(self, *, user_id: str) -> bool:
        """True when a user has this id (a would-be account owner)."""
        async with self._sessions() as session:
            return await session.get(UserRow, user_id) is not None

    async def account(self, *, account_id: str) -> SiteAccount | None:
        """An account by id."""
        async with self._sessions() as session:
            row = await session.get(AccountRow, account_id)
            return to_account(row) if row is not None else None

    async def accounts(
        self, *, page: PageRequest, search: str = ""
    ) -> tuple[list[SiteAccount], int]:
        """A page of accounts, newest first (ties by id), with the total that match."""
        conditions: list[Any] = []
        if search:
            conditions.append(
                or_(contains(AccountRow.name, search), contains(AccountRow.email, search))
            )
        async with self._sessions() as session:
            rows, total = await fetch_page(
                session,
                select(AccountRow)
                .where(*conditions)
                .order_by(AccountRow.created_at.desc(), AccountRow.id),
                offset=page.offset,
                limit=page.limit,
            )
            return [to_account(row) for row in rows], total

    async def update_account(
        self,
        *,
        account_id: str,
        now: datetime,
        changes: dict[str, Any],
        owner_user_id: str | None = None,
    ) -> SiteAccount | None:
        """Apply ``changes`` (column: value) to an account, and its owner when given ("" for
        none); answers it."""
        async with self._sessions.begin() as session:
            row = await session.get(AccountRow, account_id, with_for_update=True)
            if row is None:
                return None
            for name, value in changes.items():
                setattr(row, name, value)
            row.updated_at = now
            if owner_user_id is not None:
                await session.execute(
                    delete(AccountOwnerRow).where(AccountOwnerRow.account_id == account_id)
                )
                if owner_user_id:
                    session.add(AccountOwnerRow(account_id=account_id, user_id=owner_user_id))
        return await self.account(account_id=account_id)

    async def add_site(
        self, *, account_id: str, domain: str, name: str, secret_digest: str, now: datetime
    ) -> Site:
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
        return to_site(row)

    async def site(self, *, site_id: str) -> Site | None:
        """A site by id."""
        async with self._sessions() as session:
            row = await session.get(SiteRow, site_id)
            return to_site(row) if row is not None else None

    async def site_by_domain(self, *, domain: str) -> Site | None:
        """A site by its (lower-cased) domain."""
        async with self._sessions() as session:
            row = await session.scalar(select(SiteRow).where(SiteRow.domain == domain))
            return to_site(row) if row is not None else None

    async def sites(self, *, account_id: str, page: PageRequest) -> tuple[list[Site], int]:
        """A page of an account's sites, newest first (ties by id)."""
        async with self._sessions() as session:
            rows, total = await fetch_page(
                session,
                select(SiteRow)
                .where(SiteRow.account_id == account_id)
                .order_by(SiteRow.created_at.desc(), SiteRow.id),
                offset=page.offset,
                limit=page.limit,
            )
            return [to_site(row) for row in rows], total

    async def update_site(
        self, *, site_id: str, now: datetime, changes: dict[str, Any]
    ) -> Site | None:
        """Apply ``changes`` (column: value) to a site; answers it."""
        async with self._sessions.begin() as session:
            row = await session.get(SiteRow, site_id, with_for_update=True)
            if row is None:
                return None
            for name, value in changes.items():
                setattr(row, name, value)
            row.updated_at = now
        return to_site(row)

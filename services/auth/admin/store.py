"""The queries of ``AdminService`` (protos/iot/auth/v1/admin.proto): listing users,
changing their role and status, and their security summary.

The tables are auth's core models (``services.auth.core.store``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from iotkit.listing import PageRequest, contains
from services.auth.account import Account
from services.auth.core.store import ProfileRow, SessionRow, UserRow, to_account


class AdminStore:
    """Queries over users as administrators see them; every method runs in its own
    transaction."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def update_user(
        self,
        *,
        user_id: str,
        now: datetime,
        role: str | None = None,
        is_active: bool | None = None,
        is_verified: bool | None = None,
    ) -> dict[str, tuple[object, object]] | None:
        """Change role and status; answers each changed field as (old, new), None for an
        unknown user."""
        async with self._sessions.begin() as session:
            user = await session.get(UserRow, user_id, with_for_update=True)
            if user is None:
                return None
            changes: dict[str, tuple[object, object]] = {}
            for name, value in (
                ("role", role),
                ("is_active", is_active),
                ("is_verified", is_verified),
            ):
                if value is not None and getattr(user, name) != value:
                    changes[name] = (getattr(user, name), value)
                    setattr(user, name, value)
            if changes:
                user.updated_at = now
            return changes

    async def list_users(
        self,
        *,
        page: PageRequest,
        search: str = "",
        role: str = "",
        is_active: bool | None = None,
    ) -> tuple[list[Account], int]:
        """A page of users, newest first (ties by id), with the total that match."""
        conditions: list[Any] = []
        if search:
            conditions.append(
                or_(contains(UserRow.email, search), contains(ProfileRow.display_name, search))
            )
        if role:
            conditions.append(UserRow.role == role)
        if is_active is not None:
            conditions.append(UserRow.is_active.is_(is_active))
        joined = select(UserRow, ProfileRow).outerjoin(ProfileRow, ProfileRow.user_id == UserRow.id)
        async with self._sessions() as session:
            total = await session.scalar(
                select(func.count())
                .select_from(UserRow)
                .outerjoin(ProfileRow, ProfileRow.user_id == UserRow.id)
                .where(*conditions)
            )
            rows = await session.execute(
                joined.where(*conditions)
                .order_by(UserRow.created_at.desc(), UserRow.id)
                .offset(page.offset)
                .limit(page.limit)
            )
            return [to_account(user, profile) for user, profile in rows], int(total or 0)

    async def promote(self, *, user_id: str, now: datetime, password_hash: str | None) -> None:
        """Make a user an active, verified admin; replace the password when one is given."""
        values: dict[str, Any] = {
            "role": "admin",
            "is_active": True,
            "is_verified": True,
            "updated_at": now,
        }
        if password_hash is not None:
            values["password_hash"] = password_hash
        async with self._sessions.begin() as session:
            await session.execute(update(UserRow).where(UserRow.id == user_id).values(**values))

    async def count_sessions(self, *, user_id: str, now: datetime) -> tuple[int, int]:
        """How many sessions a user ever opened, and how many are live."""
        async with self._sessions() as session:
            total = await session.scalar(
                select(func.count()).select_from(SessionRow).where(SessionRow.user_id == user_id)
            )
            live = await session.scalar(
                select(func.count())
                .select_from(SessionRow)
                .where(
                    SessionRow.user_id == user_id,
                    SessionRow.revoked_at.is_(None),
                    SessionRow.expires_at > now,
                )
            )
            return int(total or 0), int(live or 0)

    async def failed_login_attempts(self, *, user_id: str) -> int:
        """How many logins of a user failed since their last successful one."""
        async with self._sessions() as session:
            count = await session.scalar(
                select(UserRow.failed_login_attempts).where(UserRow.id == user_id)
            )
            return count or 0

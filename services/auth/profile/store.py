"""The queries of ``ProfileService``: reading and changing a user's profile.

The ``profiles`` table is one of auth's core models (``services.auth.core.store``),
created with the user at registration.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.auth.account import Profile
from services.auth.core.store import ProfileRow, to_profile


class ProfileStore:
    """Queries over profiles; every method runs in its own transaction."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def profile_of(self, *, user_id: str) -> Profile | None:
        """The profile of a user."""
        async with self._sessions() as session:
            row = await session.scalar(select(ProfileRow).where(ProfileRow.user_id == user_id))
            return to_profile(row) if row is not None else None

    async def update_profile(
        self,
        *,
        user_id: str,
        now: datetime,
        display_name: str | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Profile | None:
        """Change the fields given of a user's profile; answers it."""
        async with self._sessions.begin() as session:
            profile = await session.scalar(
                select(ProfileRow).where(ProfileRow.user_id == user_id).with_for_update()
            )
            if profile is None:
                return None
            if display_name is not None:
                profile.display_name = display_name
            if tags is not None:
                profile.tags = tags
            if metadata is not None:
                profile.extra = metadata
            profile.updated_at = now
        return to_profile(profile)

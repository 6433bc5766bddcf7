"""The caller's profile: reading it and changing the fields given (seed 001 PROFILE)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from iotkit.context import Caller
from iotkit.errors import NotFound
from iotkit.sqltypes import utcnow
from iotkit.validation import Violations
from services.auth import rules
from services.auth.account import Profile
from services.auth.profile.store import ProfileStore
from services.auth.security.store import SecurityLog
from services.auth.security.values import Action


class ProfileService:
    """Reads and updates the caller's own profile."""

    def __init__(
        self, *, store: ProfileStore, log: SecurityLog, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._store = store
        self._log = log
        self._clock = clock

    async def get(self, *, caller: Caller) -> Profile:
        """The caller's profile."""
        profile = await self._store.profile_of(user_id=caller.subject)
        if profile is None:
            raise NotFound("Profile not found")
        return profile

    async def update(
        self,
        *,
        caller: Caller,
        display_name: str | None,
        tags: list[Any] | None,
        metadata: dict[str, Any] | None,
    ) -> Profile:
        """Change the fields that are not None; the others stay."""
        violations = Violations()
        if display_name is not None:
            display_name = rules.check_display_name(violations, display_name)
        if tags is not None:
            tags = rules.check_tags(violations, tags)
        if metadata is not None:
            metadata = rules.check_metadata(violations, metadata)
        violations.raise_if_any()
        now = self._clock()
        profile = await self._store.update_profile(
            user_id=caller.subject,
            now=now,
            display_name=display_name,
            tags=tags,
            metadata=metadata,
        )
        if profile is None:
            raise NotFound("Profile not found")
        changed = [
            name
            for name, value in (
                ("display_name", display_name),
                ("tags", tags),
                ("metadata", metadata),
            )
            if value is not None
        ]
        await self._log.record(
            user_id=caller.subject,
            action=Action.PROFILE_UPDATED,
            now=now,
            details={"fields": changed},
        )
        return profile

"""Auth's users as the logic sees them: frozen values that the stores build from their
rows, so that nothing above a store holds a database row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class User:
    """A user. ``password_hash`` (argon2id) is for checking passwords, never for showing."""

    id: str
    email: str
    role: str
    is_active: bool
    is_verified: bool
    mfa_requested: bool
    mfa_enabled: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None
    password_hash: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Profile:
    """What a user shows of themselves."""

    id: str
    user_id: str
    display_name: str
    tags: tuple[str, ...]
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Account:
    """A user with their profile."""

    user: User
    profile: Profile | None

    @property
    def is_configured(self) -> bool:
        """True when nothing is left to set up: MFA, if asked for at registration, is enabled."""
        return not (self.user.mfa_requested and not self.user.mfa_enabled)


@dataclass(frozen=True, slots=True)
class LoginSession:
    """A login: every token pair issued by logging in and refreshing belongs to one."""

    id: str
    user_id: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    ip_address: str
    user_agent: str

    def is_live(self, now: datetime) -> bool:
        """True while the session is neither revoked nor expired."""
        return self.revoked_at is None and self.expires_at > now

"""An account as the logic sees it: a user with their profile."""

from __future__ import annotations

from dataclasses import dataclass

from services.auth.core.store import ProfileRow, UserRow


@dataclass(frozen=True, slots=True)
class Account:
    """A user with their profile."""

    user: UserRow
    profile: ProfileRow | None

    @property
    def is_configured(self) -> bool:
        """True when nothing is left to set up: MFA, if asked for at registration, is enabled."""
        return not (self.user.mfa_requested and not self.user.mfa_enabled)

"""The security log as the logic sees it: the actions it records and its events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


class Action:
    """The actions the log records."""

    LOGIN_SUCCESS = "login_success"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"
    REFRESH_REUSE = "refresh_token_reuse"
    PASSWORD_CHANGED = "password_changed"
    PASSWORD_RESET = "password_reset"
    PASSWORD_RESET_REQUESTED = "password_reset_requested"
    EMAIL_VERIFIED = "email_verified"
    MFA_ENABLED = "mfa_enabled"
    MFA_DISABLED = "mfa_disabled"
    RECOVERY_CODES = "recovery_codes_regenerated"
    SESSION_REVOKED = "session_revoked"
    SESSIONS_REVOKED = "sessions_revoked"
    PROFILE_UPDATED = "profile_updated"
    DATA_EXPORTED = "data_exported"
    ADMIN_UPDATE = "admin_update"


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """One event of one user's security log."""

    id: str
    user_id: str
    action: str
    success: bool
    ip_address: str
    user_agent: str
    details: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class LogPage:
    """One page of a user's log."""

    events: list[SecurityEvent]
    total: int

"""Accounts and their upload sites as the logic sees them (seed 002)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class SiteAccount:
    """An account that owns upload sites; ``owner_user_id`` is the user whose devices its
    sites write, None when it names no owner."""

    id: str
    email: str
    name: str
    is_active: bool
    max_concurrent_batches: int
    created_at: datetime
    updated_at: datetime
    owner_user_id: str | None


@dataclass(frozen=True, slots=True)
class Site:
    """An upload site. ``secret_digest`` (SHA-256 of the client secret) is for checking
    credentials, never for showing."""

    id: str
    account_id: str
    domain: str
    name: str
    is_active: bool
    created_at: datetime
    updated_at: datetime
    secret_rotated_at: datetime
    secret_digest: str = field(repr=False)

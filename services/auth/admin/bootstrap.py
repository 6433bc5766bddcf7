"""The first administrator: ``iot admin create`` or IOT_ADMIN_EMAIL at first start.

The command creates the account or promotes an existing one. The
environment variables only ever create: an account that already exists is
left alone, so that whoever registered that address first cannot be made an
admin by a later restart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from iotkit.sqltypes import utcnow
from iotkit.validation import Violations
from services.auth import rules
from services.auth.core.store import AuthStore
from services.auth.passwords import Passwords

log = logging.getLogger(__name__)

CREATED, PROMOTED, UNCHANGED = "created", "promoted", "unchanged"


@dataclass(frozen=True, slots=True)
class AdminOutcome:
    """What making an admin did."""

    email: str
    action: str


async def create_admin(
    *, store: AuthStore, passwords: Passwords, email: str, password: str | None
) -> AdminOutcome:
    """Create an active, verified admin, or promote the account of ``email``.

    A new account needs ``password``; for an existing one it replaces the
    password when given. Raises ValidationFailed for a bad email or password.
    """
    violations = Violations()
    email = rules.check_email(violations, email)
    existing = await store.user_by_email(email=email) if not violations.has("email") else None
    if password is not None or existing is None:
        rules.check_password(violations, password or "")
    violations.raise_if_any()
    now = utcnow()
    password_hash = await passwords.hash(password) if password is not None else None
    if existing is None:
        assert password_hash is not None  # checked above: a new account needs a password
        user, _ = await store.add_user(
            email=email,
            password_hash=password_hash,
            display_name=email.split("@")[0][: rules.DISPLAY_NAME_MAX],
            mfa_requested=False,
            now=now,
            role="admin",
        )
        await store.promote(user_id=user.id, now=now, password_hash=None)
        return AdminOutcome(email, CREATED)
    await store.promote(user_id=existing.id, now=now, password_hash=password_hash)
    return AdminOutcome(email, PROMOTED)


async def admin_from_environment(
    *, store: AuthStore, passwords: Passwords, email: str, password: str
) -> AdminOutcome:
    """Create the admin named by IOT_ADMIN_EMAIL unless that account exists already."""
    violations = Violations()
    normalised = rules.check_email(violations, email, field="IOT_ADMIN_EMAIL")
    violations.raise_if_any()
    existing = await store.user_by_email(email=normalised)
    if existing is not None:
        if existing.role != "admin":
            log.warning(
                "IOT_ADMIN_EMAIL names an existing non-admin account; left unchanged "
                "(use `iot admin create` to promote it)"
            )
        return AdminOutcome(normalised, UNCHANGED)
    outcome = await create_admin(store=store, passwords=passwords, email=email, password=password)
    log.info("created the first admin from IOT_ADMIN_EMAIL")
    return outcome

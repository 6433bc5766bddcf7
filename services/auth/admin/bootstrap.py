"""The first administrator: ``iot admin create`` or IOT_ADMIN_EMAIL at first start.

The command creates the account or promotes an existing one; a promotion
goes through the AdminService as an admin's change over gRPC does, so it
ends the user's sessions and no token keeps the old role. The environment
variables only ever create: an account that already exists is left alone,
so that whoever registered that address first cannot be made an admin by a
later restart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from iotkit.sqltypes import utcnow
from iotkit.validation import Violations
from services.auth import rules
from services.auth.admin.service import AdminService
from services.auth.admin.store import AdminStore
from services.auth.core.store import AuthStore
from services.auth.passwords import Passwords

log = logging.getLogger(__name__)

CREATED, PROMOTED, UNCHANGED = "created", "promoted", "unchanged"
COMMAND_LINE = "command-line"
"""Who made a change from ``iot admin``, in the security log's ``by``."""


@dataclass(frozen=True, slots=True)
class AdminOutcome:
    """What making an admin did."""

    email: str
    action: str


async def create_admin(
    *,
    store: AuthStore,
    admins: AdminStore,
    passwords: Passwords,
    admin: AdminService,
    email: str,
    password: str | None,
) -> AdminOutcome:
    """Create an active, verified admin, or promote the account of ``email``.

    A new account needs ``password``; for an existing one it replaces the
    password when given. A promotion that changes the role ends the user's
    sessions. Raises ValidationFailed for a bad email or password.
    """
    violations = Violations()
    email = rules.check_email(violations, email)
    existing = await store.user_by_email(email=email) if not violations.has("email") else None
    if password is not None or existing is None:
        rules.check_password(violations, password or "")
    violations.raise_if_any()
    if existing is None:
        assert password is not None  # checked above: a new account needs a password
        await _add_admin(
            store=store, admins=admins, passwords=passwords, email=email, password=password
        )
        return AdminOutcome(email, CREATED)
    await admin.change_user(
        user_id=existing.id, by=COMMAND_LINE, role="admin", is_active=True, is_verified=True
    )
    if password is not None:
        await store.set_password(
            user_id=existing.id, password_hash=await passwords.hash(password), now=utcnow()
        )
    return AdminOutcome(email, PROMOTED)


async def _add_admin(
    *, store: AuthStore, admins: AdminStore, passwords: Passwords, email: str, password: str
) -> None:
    now = utcnow()
    account = await store.add_user(
        email=email,
        password_hash=await passwords.hash(password),
        display_name=email.split("@")[0][: rules.DISPLAY_NAME_MAX],
        mfa_requested=False,
        now=now,
        role="admin",
    )
    await admins.promote(user_id=account.user.id, now=now, password_hash=None)


async def admin_from_environment(
    *, store: AuthStore, admins: AdminStore, passwords: Passwords, email: str, password: str
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
    rules.check_password(violations, password)
    violations.raise_if_any()
    await _add_admin(
        store=store, admins=admins, passwords=passwords, email=normalised, password=password
    )
    log.info("created the first admin from IOT_ADMIN_EMAIL")
    return AdminOutcome(normalised, CREATED)

"""User administration (seed 001 ADMIN): listing, one user's security summary, changes.

The detail view says whether a verification or reset link is pending and
when it expires, never the token. Deactivating a user or changing their role
ends their sessions, so that no token keeps the old rights at auth; an admin
cannot demote or deactivate themselves (the suite would lose its last admin).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from iotkit import reasons
from iotkit.context import Caller
from iotkit.errors import FailedPrecondition, NotFound
from iotkit.listing import PageRequest, check_page
from iotkit.sqltypes import utcnow
from iotkit.validation import Violations
from services.auth import rules
from services.auth.account import Account
from services.auth.admin.store import AdminStore
from services.auth.core.store import AuthStore
from services.auth.link_tokens import RESET_PASSWORD, VERIFY_EMAIL, LinkTokenStore
from services.auth.security.store import SecurityLog
from services.auth.security.values import Action


@dataclass(frozen=True, slots=True)
class UserPage:
    """A page of users."""

    accounts: list[Account]
    total: int
    request: PageRequest


@dataclass(frozen=True, slots=True)
class AdminUserView:
    """One user as an admin sees them."""

    account: Account
    verification_expires: datetime | None
    reset_expires: datetime | None
    total_sessions: int
    active_sessions: int
    failed_login_attempts: int
    last_incident: datetime | None


class AdminService:
    """What administrators do to users."""

    def __init__(
        self,
        *,
        store: AdminStore,
        accounts: AuthStore,
        links: LinkTokenStore,
        log: SecurityLog,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._accounts = accounts
        self._links = links
        self._log = log
        self._clock = clock

    async def list_users(
        self, *, page: int, limit: int, search: str, role: str, is_active: bool | None
    ) -> UserPage:
        """A page of users, newest first, filtered by text, role and status."""
        violations = Violations()
        request = check_page(violations, page, limit)
        search = rules.check_search(violations, search)
        if role:
            rules.check_role(violations, role)
        violations.raise_if_any()
        accounts, total = await self._store.list_users(
            page=request, search=search, role=role, is_active=is_active
        )
        return UserPage(accounts, total, request)

    async def get_user(self, *, user_id: str) -> AdminUserView:
        """One user with their pending links and security summary."""
        account = await self._account(user_id)
        user_id = account.user.id  # as stored, whichever way the caller wrote it
        now = self._clock()
        total, active = await self._store.count_sessions(user_id=user_id, now=now)
        return AdminUserView(
            account=account,
            verification_expires=await self._links.pending_expiry(
                user_id=user_id, purpose=VERIFY_EMAIL, now=now
            ),
            reset_expires=await self._links.pending_expiry(
                user_id=user_id, purpose=RESET_PASSWORD, now=now
            ),
            total_sessions=total,
            active_sessions=active,
            failed_login_attempts=await self._store.failed_login_attempts(user_id=user_id),
            last_incident=await self._log.last_incident(user_id=user_id),
        )

    async def update_user(
        self,
        *,
        caller: Caller,
        user_id: str,
        role: str | None,
        is_active: bool | None,
        is_verified: bool | None,
    ) -> AdminUserView:
        """Change role and status; ends the user's sessions when role or status changes."""
        violations = Violations()
        if role is not None:
            rules.check_role(violations, role)
        violations.raise_if_any()
        # As stored, whichever way the caller wrote it (in capitals it must still be the
        # caller's own id below).
        user_id = (await self._account(user_id)).user.id
        if user_id == caller.subject and (role == "user" or is_active is False):
            raise FailedPrecondition(
                "Administrators cannot demote or deactivate themselves",
                reason=reasons.SELF_MODIFICATION,
            )
        await self.change_user(
            user_id=user_id,
            by=caller.subject,
            role=role,
            is_active=is_active,
            is_verified=is_verified,
        )
        return await self.get_user(user_id=user_id)

    async def change_user(
        self,
        *,
        user_id: str,
        by: str,
        role: str | None,
        is_active: bool | None,
        is_verified: bool | None,
    ) -> int:
        """Change role and status on behalf of ``by`` (an admin's id, or ``command-line``)
        and log it; answers how many sessions ended.

        A new role or a deactivation ends the user's sessions, so that no token keeps
        the old rights. Raises NotFound for an unknown user; the caller checks the values.
        """
        now = self._clock()
        changes = await self._store.update_user(
            user_id=user_id, now=now, role=role, is_active=is_active, is_verified=is_verified
        )
        if changes is None:
            raise NotFound("User not found")
        revoked = 0
        if "role" in changes or changes.get("is_active", (None, True))[1] is False:
            revoked = await self._accounts.revoke_user_sessions(
                user_id=user_id, reason="admin_update", now=now
            )
        if changes:
            await self._log.record(
                user_id=user_id,
                action=Action.ADMIN_UPDATE,
                now=now,
                details={
                    "by": by,
                    "changes": {name: new for name, (_, new) in changes.items()},
                    "sessions_revoked": revoked,
                },
            )
        return revoked

    async def _account(self, user_id: str) -> Account:
        account = None
        if known := rules.canonical_uuid(user_id):
            account = await self._accounts.account(user_id=known)
        if account is None:
            raise NotFound("User not found")
        return account

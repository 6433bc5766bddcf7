"""What users do for their own account with email and password: verifying the
address, forgetting and resetting the password, changing it.

Link tokens are random, single-use, expiring and stored as digests. A
forgotten-password request answers the same whether or not the address has
an account, and sends at most a few links per hour to one address.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta

from iotkit import reasons
from iotkit.context import Caller
from iotkit.errors import FailedPrecondition, NotFound, RateLimited, Unauthenticated
from iotkit.limits import WindowCounter
from iotkit.sqltypes import utcnow
from iotkit.validation import Violations
from services.auth import rules
from services.auth.account import Account, User
from services.auth.core.store import AuthStore
from services.auth.crypto import digest, new_token
from services.auth.link_tokens import RESET_PASSWORD, VERIFY_EMAIL, LinkTokenStore
from services.auth.lockout import LoginGuard
from services.auth.mail.mailer import Mailer
from services.auth.passwords import Passwords
from services.auth.security.store import SecurityLog
from services.auth.security.values import Action

VERIFY_TTL = timedelta(hours=24)
RESET_TTL = timedelta(hours=1)
MAILS_PER_HOUR = 3
"""Links of one kind sent to one address per hour, at most."""

BAD_TOKEN = "Invalid or expired token"


class SelfService:
    """Email verification, password reset and password change."""

    def __init__(
        self,
        *,
        store: AuthStore,
        links: LinkTokenStore,
        mailer: Mailer,
        passwords: Passwords,
        guard: LoginGuard,
        mail_limit: WindowCounter,
        log: SecurityLog,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._links = links
        self._mailer = mailer
        self._passwords = passwords
        self._guard = guard
        self._mail_limit = mail_limit
        self._log = log
        self._clock = clock

    async def send_verification(self, *, user: User) -> None:
        """Email a new verification link to ``user``; earlier links stop working."""
        now = self._clock()
        token = new_token()
        await self._links.issue(
            user_id=user.id,
            purpose=VERIFY_EMAIL,
            token_digest=digest(token),
            now=now,
            expires_at=now + VERIFY_TTL,
        )
        await self._mailer.verification(
            to=user.email, token=token, hours=int(VERIFY_TTL.total_seconds() // 3600), now=now
        )

    async def resend_verification(self, *, caller: Caller) -> str:
        """Send the caller a new verification link; answers the address."""
        user = await self._store.user_by_id(user_id=caller.subject)
        if user is None:
            raise NotFound("User not found")
        if user.is_verified:
            raise FailedPrecondition("Email is already verified", reason=reasons.ALREADY_VERIFIED)
        window = await self._mail_limit.hit(_mail_key(VERIFY_EMAIL, user.email))
        if window.count > MAILS_PER_HOUR:
            raise RateLimited(
                "Too many verification emails; try again later",
                retry_after=window.retry_after_seconds,
            )
        await self.send_verification(user=user)
        return user.email

    async def verify_email(self, *, token: str) -> Account:
        """Mark the address of the token's user verified."""
        token = token.strip()
        violations = Violations()
        if not token:
            violations.add("token", rules.MSG_VERIFICATION_TOKEN_REQUIRED)
        violations.raise_if_any()
        now = self._clock()
        user_id = await self._links.consume(
            token_digest=digest(token), purpose=VERIFY_EMAIL, now=now
        )
        if user_id is None:
            raise Unauthenticated(BAD_TOKEN)
        if await self._store.set_verified(user_id=user_id, now=now) is None:
            raise Unauthenticated(BAD_TOKEN)
        await self._log.record(user_id=user_id, action=Action.EMAIL_VERIFIED, now=now)
        account = await self._store.account(user_id=user_id)
        if account is None:
            raise Unauthenticated(BAD_TOKEN)
        return account

    async def forgot_password(self, *, email: str) -> None:
        """Email a reset link if ``email`` has an active account; silent either way."""
        violations = Violations()
        email = rules.check_email(violations, email)
        violations.raise_if_any()
        # Counted for unknown addresses too, so the limit says nothing about who exists.
        window = await self._mail_limit.hit(_mail_key(RESET_PASSWORD, email))
        user = await self._store.user_by_email(email=email)
        if user is None or not user.is_active or window.count > MAILS_PER_HOUR:
            return
        now = self._clock()
        token = new_token()
        await self._links.issue(
            user_id=user.id,
            purpose=RESET_PASSWORD,
            token_digest=digest(token),
            now=now,
            expires_at=now + RESET_TTL,
        )
        await self._mailer.password_reset(
            to=user.email, token=token, minutes=int(RESET_TTL.total_seconds() // 60), now=now
        )
        await self._log.record(user_id=user.id, action=Action.PASSWORD_RESET_REQUESTED, now=now)

    async def reset_password(self, *, token: str, password: str) -> int:
        """Set a new password with a reset token; ends every session. Answers how many."""
        token = token.strip()
        violations = Violations()
        if not token:
            violations.add("token", rules.MSG_TOKEN_REQUIRED)
        rules.check_password(violations, password, required=rules.MSG_NEW_PASSWORD_REQUIRED)
        violations.raise_if_any()
        now = self._clock()
        user_id = await self._links.consume(
            token_digest=digest(token), purpose=RESET_PASSWORD, now=now
        )
        user = await self._store.user_by_id(user_id=user_id) if user_id else None
        if user is None or not user.is_active:
            raise Unauthenticated(BAD_TOKEN)
        await self._store.set_password(
            user_id=user.id, password_hash=await self._passwords.hash(password), now=now
        )
        # The link proves control of the mailbox, which is what verification asks.
        await self._store.set_verified(user_id=user.id, now=now)
        revoked = await self._store.revoke_user_sessions(
            user_id=user.id, reason="password_reset", now=now
        )
        await self._guard.succeeded(user.email)
        await self._log.record(
            user_id=user.id,
            action=Action.PASSWORD_RESET,
            now=now,
            details={"sessions_revoked": revoked},
        )
        await self._mailer.password_changed(to=user.email, now=now)
        return revoked

    async def change_password(
        self, *, caller: Caller, current_password: str, new_password: str
    ) -> int:
        """Change the caller's password; ends their other sessions. Answers how many."""
        violations = Violations()
        if not current_password:
            violations.add("current_password", rules.MSG_CURRENT_PASSWORD_REQUIRED)
        rules.check_password(
            violations, new_password, field="new_password", required=rules.MSG_NEW_PASSWORD_REQUIRED
        )
        if current_password and current_password == new_password:
            violations.add("new_password", rules.MSG_PASSWORD_UNCHANGED)
        violations.raise_if_any()
        user = await self._store.user_by_id(user_id=caller.subject)
        if user is None:
            raise NotFound("User not found")
        await self._guard.check(user.email)
        now = self._clock()
        if not await self._passwords.matches(user.password_hash, current_password):
            await self._guard.failed(user.email)
            await self._log.record(
                user_id=user.id,
                action=Action.PASSWORD_CHANGED,
                now=now,
                success=False,
                details={"reason": "wrong_current_password"},
            )
            violations.add("current_password", rules.MSG_CURRENT_PASSWORD_WRONG)
            violations.raise_if_any()
        await self._store.set_password(
            user_id=user.id, password_hash=await self._passwords.hash(new_password), now=now
        )
        revoked = await self._store.revoke_user_sessions(
            user_id=user.id, reason="password_changed", now=now, keep=caller.session_id
        )
        await self._log.record(
            user_id=user.id,
            action=Action.PASSWORD_CHANGED,
            now=now,
            details={"sessions_revoked": revoked},
        )
        await self._mailer.password_changed(to=user.email, now=now)
        return revoked


def _mail_key(kind: str, email: str) -> str:
    return f"{kind}:{hashlib.sha256(email.encode()).hexdigest()[:32]}"

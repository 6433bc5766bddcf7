"""Auth's logic: registration, login (with lockout and MFA), refresh rotation,
logout, token facts.

No gRPC and no SQL here: the servicer translates messages, the store talks
to the database.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from iotkit import reasons
from iotkit.context import Caller
from iotkit.errors import NotFound, PermissionDenied, Unauthenticated
from iotkit.sqltypes import utcnow
from iotkit.tokens import ISSUER, TokenVerifier
from iotkit.validation import Violations
from services.auth import rules
from services.auth.account import Account, LoginSession, User
from services.auth.core.self_service import SelfService
from services.auth.core.store import AuthStore, RefreshOutcome
from services.auth.keys import SigningKeys
from services.auth.lockout import LoginGuard
from services.auth.mfa.service import MfaManager
from services.auth.passwords import Passwords
from services.auth.security.store import SecurityLog
from services.auth.security.values import Action

USER_SCOPES = (
    "devices:read",
    "devices:write",
    "telemetry:read",
    "telemetry:write",
    "analytics:read",
    "analytics:write",
    "chat",
)
ADMIN_SCOPES = (*USER_SCOPES, "admin")
SERVICE_TOKEN_TTL = 300
DEVICE_SCOPES = ("telemetry:write",)
MAX_DEVICE_TOKEN_TTL = 3650 * 24 * 3600

SERVICE_SCOPES: dict[str, tuple[str, ...]] = {
    "auth": ("system:read",),
    "devices": ("tokens:device", "sessions:revoked"),
    "telemetry": (
        "devices:activity",
        "devices:events",
        "devices:ingest",
        "analytics:ingest",
        "sessions:revoked",
    ),
    "analytics": ("sessions:revoked",),
    "chat": ("sessions:revoked",),
}
"""What each of the suite's processes may do with its service token."""

BAD_CREDENTIALS = "Invalid email or password"
BAD_TOKEN = "Invalid or expired token"
BAD_MFA_CODE = "Invalid MFA code"
MFA_CODE_NEEDED = "Enter the code from your authenticator app or a recovery code"
"""The answer to the first step of an MFA login: the password was right, a code is due."""
TOUCH_INTERVAL = timedelta(seconds=60)
"""A session's ``last_used`` is stamped at most this often, to keep reads cheap."""


def scopes_for(role: str) -> tuple[str, ...]:
    """The scopes a user of ``role`` gets in their access tokens."""
    return ADMIN_SCOPES if role == "admin" else USER_SCOPES


@dataclass(frozen=True, slots=True)
class MintedToken:
    """A token with its lifetime (epoch seconds it expires at, seconds it lasts) and scopes."""

    token: str
    expires_at: int
    scopes: tuple[str, ...]
    expires_in: int


@dataclass(frozen=True, slots=True)
class Tokens:
    """A login's answer: the account and, unless MFA is pending, a token pair."""

    account: Account
    access_token: str
    refresh_token: str
    expires_in: int
    mfa_required: bool = False


class AuthService:
    """Accounts and sessions of the suite."""

    def __init__(
        self,
        *,
        store: AuthStore,
        keys: SigningKeys,
        verifier: TokenVerifier,
        passwords: Passwords,
        guard: LoginGuard,
        mfa: MfaManager,
        self_service: SelfService,
        log: SecurityLog,
        access_ttl: int,
        refresh_ttl: int,
        service_secret: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._keys = keys
        self._verifier = verifier
        self._passwords = passwords
        self._guard = guard
        self._mfa = mfa
        self._self_service = self_service
        self._log = log
        self._access_ttl = access_ttl
        self._refresh_ttl = refresh_ttl
        self._clock = clock
        self._service_secret = service_secret

    async def register(
        self, *, email: str, password: str, display_name: str | None, mfa_enabled: bool
    ) -> Account:
        """Create an account after checking every field and email a verification link;
        raises AlreadyExists for a taken email."""
        violations = Violations()
        email = rules.check_email(violations, email)
        rules.check_password(violations, password)
        name = email.split("@")[0][: rules.DISPLAY_NAME_MAX]
        if display_name is not None:
            name = rules.check_display_name(violations, display_name)
        violations.raise_if_any()
        account = await self._store.add_user(
            email=email,
            password_hash=await self._passwords.hash(password),
            display_name=name,
            mfa_requested=mfa_enabled,
            now=self._clock(),
        )
        await self._self_service.send_verification(user=account.user)
        return account

    async def login(
        self, *, email: str, password: str, mfa_code: str | None, ip_address: str, user_agent: str
    ) -> Tokens:
        """Check credentials (and the TOTP code of an MFA account) and open a session.

        Unknown email and wrong password fail alike; after too many failures the
        email is locked out for a while, whatever is presented.
        """
        violations = Violations()
        email = rules.check_email(violations, email)
        # Only presence: the registration rules would turn a wrong password into a 400
        # that quotes the policy, where every wrong password must be the same 401.
        if not password:
            violations.add("password", rules.MSG_PASSWORD_REQUIRED)
        violations.raise_if_any()
        await self._guard.check(email)
        user = await self._store.user_by_email(email=email)
        if user is None:
            await self._passwords.spend_decoy(password)
            await self._guard.failed(email)
            raise Unauthenticated(BAD_CREDENTIALS, reason=reasons.INVALID_CREDENTIALS)
        if not await self._passwords.matches(user.password_hash, password):
            await self._failed(user, "invalid_password")
            raise Unauthenticated(BAD_CREDENTIALS, reason=reasons.INVALID_CREDENTIALS)
        if not user.is_active:
            await self._log.record(
                user_id=user.id,
                action=Action.LOGIN_FAILED,
                now=self._clock(),
                success=False,
                details={"reason": "account_disabled"},
            )
            raise PermissionDenied("Account is deactivated", reason=reasons.ACCOUNT_DISABLED)
        method = "password"
        if user.mfa_enabled:
            if not mfa_code or not mfa_code.strip():
                return Tokens(await self._account(user.id), "", "", 0, mfa_required=True)
            second = await self._mfa.check_code(user=user, code=mfa_code)
            if second is None:
                await self._failed(user, "invalid_mfa_code")
                raise Unauthenticated(BAD_MFA_CODE, reason=reasons.INVALID_MFA_CODE)
            method = f"password+{second}"
        now = self._clock()
        rehash = None
        if self._passwords.needs_rehash(user.password_hash):
            rehash = await self._passwords.hash(password)
        await self._store.record_login(user_id=user.id, now=now, password_hash=rehash)
        await self._guard.succeeded(email)
        session = await self._store.open_session(
            user_id=user.id,
            now=now,
            expires_at=now + timedelta(seconds=self._refresh_ttl),
            ip_address=ip_address,
            user_agent=user_agent,
        )
        await self._log.record(
            user_id=user.id,
            action=Action.LOGIN_SUCCESS,
            now=now,
            details={"session_id": session.id, "method": method},
        )
        account = await self._account(user.id)
        # The login stamped now: answer that, whatever precision the database keeps.
        account = replace(account, user=replace(account.user, last_login_at=now))
        return await self._issue(account, session, now)

    async def _failed(self, user: User, reason: str) -> None:
        now = self._clock()
        await self._guard.failed(user.email)
        await self._store.record_failed_login(user_id=user.id, now=now)
        await self._log.record(
            user_id=user.id,
            action=Action.LOGIN_FAILED,
            now=now,
            success=False,
            details={"reason": reason},
        )

    async def refresh(self, *, refresh_token: str) -> Tokens:
        """Exchange a refresh token for a new pair; a reused one revokes its session."""
        violations = Violations()
        if not refresh_token.strip():
            violations.add("refresh_token", "Refresh token is required")
        violations.raise_if_any()
        caller = await self._verifier.verify(refresh_token.strip(), token_types=("refresh",))
        if caller.session_id is None or caller.token_id is None:
            raise Unauthenticated(BAD_TOKEN)
        now = self._clock()
        outcome = await self._store.exchange_refresh_token(
            jti=caller.token_id, session_id=caller.session_id, now=now
        )
        if outcome == RefreshOutcome.REUSED:
            # A used token coming back means it was copied: end the session for everyone holding it.
            await self._store.revoke_session(
                session_id=caller.session_id, reason="refresh_reuse", now=now
            )
            if await self._store.user_by_id(user_id=caller.subject) is not None:
                await self._log.record(
                    user_id=caller.subject,
                    action=Action.REFRESH_REUSE,
                    now=now,
                    success=False,
                    details={"session_id": caller.session_id},
                )
            raise Unauthenticated(BAD_TOKEN)
        if outcome != RefreshOutcome.EXCHANGED:
            raise Unauthenticated(BAD_TOKEN)
        session = await self._store.session_by_id(session_id=caller.session_id)
        if session is None or not session.is_live(now):
            raise Unauthenticated(BAD_TOKEN)
        account = await self._account(caller.subject)
        if not account.user.is_active:
            raise Unauthenticated(BAD_TOKEN)
        return await self._issue(account, session, now)

    async def logout(self, *, caller: Caller) -> str:
        """Revoke the caller's session; answers its id."""
        if caller.session_id is None:
            raise Unauthenticated(BAD_TOKEN)
        now = self._clock()
        await self._store.revoke_session(session_id=caller.session_id, reason="logout", now=now)
        await self._log.record(
            user_id=caller.subject,
            action=Action.LOGOUT,
            now=now,
            details={"session_id": caller.session_id},
        )
        return caller.session_id

    async def me(self, *, caller: Caller) -> Account:
        """The caller's account and profile."""
        return await self._account(caller.subject)

    async def session_is_live(self, caller: Caller) -> bool:
        """False when the session of a user token was revoked or has expired.

        A live session is stamped used (at most once a minute) for the sessions list.
        """
        if caller.token_type != "access":
            return True
        if caller.session_id is None:
            return False
        session = await self._store.session_by_id(session_id=caller.session_id)
        now = self._clock()
        if session is None or not session.is_live(now):
            return False
        if session.last_used_at < now - TOUCH_INTERVAL:
            await self._store.touch_session(
                session_id=session.id, now=now, older_than=now - TOUCH_INTERVAL
            )
        return True

    def service_token(self, *, service: str) -> MintedToken:
        """A short-lived token for one of the suite's own processes calling another."""
        scopes = SERVICE_SCOPES[service]
        now = int(self._clock().timestamp())
        claims = {
            "iss": ISSUER,
            "sub": service,
            "role": "service",
            "scope": " ".join(scopes),
            "typ": "service",
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + SERVICE_TOKEN_TTL,
        }
        return MintedToken(
            self._keys.sign(claims), now + SERVICE_TOKEN_TTL, scopes, SERVICE_TOKEN_TTL
        )

    def exchange_service_secret(self, *, service: str, client_secret: str) -> MintedToken:
        """A service token for a process that presents the suite's service secret."""
        known = service in SERVICE_SCOPES and service != "auth"
        if not (
            known and hmac.compare_digest(client_secret.encode(), self._service_secret.encode())
        ):
            raise Unauthenticated("Invalid client credentials", reason=reasons.INVALID_CLIENT)
        return self.service_token(service=service)

    def device_token(
        self, *, device_id: str, owner_id: str, credential_id: str, ttl_seconds: int
    ) -> MintedToken:
        """The token of a device credential the devices service has recorded."""
        violations = Violations()
        for field, value in (
            ("device_id", device_id),
            ("owner_id", owner_id),
            ("credential_id", credential_id),
        ):
            if not value:
                violations.add(field, f"{field} is required")
        if not 0 < ttl_seconds <= MAX_DEVICE_TOKEN_TTL:
            violations.add("ttl_seconds", "ttl_seconds must be between 1 second and 10 years")
        violations.raise_if_any()
        now = int(self._clock().timestamp())
        claims = {
            "iss": ISSUER,
            "sub": device_id,
            "owner": owner_id,
            "cid": credential_id,
            "role": "device",
            "scope": " ".join(DEVICE_SCOPES),
            "typ": "device",
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + ttl_seconds,
        }
        return MintedToken(self._keys.sign(claims), now + ttl_seconds, DEVICE_SCOPES, ttl_seconds)

    async def active_users(self) -> int:
        """Distinct users with a live session."""
        return await self._store.count_active_users(now=self._clock())

    async def _account(self, user_id: str) -> Account:
        account = await self._store.account(user_id=user_id)
        if account is None:
            raise NotFound("User not found")
        return account

    async def _issue(self, account: Account, session: LoginSession, now: datetime) -> Tokens:
        issued = int(now.timestamp())
        common = {
            "iss": ISSUER,
            "sub": account.user.id,
            "role": account.user.role,
            "sid": session.id,
        }
        access = self._keys.sign(
            {
                **common,
                "typ": "access",
                "scope": " ".join(scopes_for(account.user.role)),
                "jti": str(uuid.uuid4()),
                "iat": issued,
                "exp": issued + self._access_ttl,
            }
        )
        refresh_jti = str(uuid.uuid4())
        refresh_expires = min(session.expires_at, now + timedelta(seconds=self._refresh_ttl))
        refresh = self._keys.sign(
            {
                **common,
                "typ": "refresh",
                "jti": refresh_jti,
                "iat": issued,
                "exp": int(refresh_expires.timestamp()),
            }
        )
        await self._store.add_refresh_token(
            jti=refresh_jti, session_id=session.id, issued_at=now, expires_at=refresh_expires
        )
        return Tokens(account, access, refresh, self._access_ttl)

"""MFA logic: setting up, enabling and disabling TOTP, recovery codes, checking login codes.

The TOTP secret is sealed at rest and shown only by ``setup``; recovery codes
are stored as keyed digests and shown only when issued. Wrong codes count
toward the same lockout as wrong passwords.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from iotkit import reasons
from iotkit.context import Caller
from iotkit.errors import FailedPrecondition, NotFound
from iotkit.sqltypes import utcnow
from iotkit.validation import Violations
from services.auth.account import Account, User
from services.auth.core.store import AuthStore
from services.auth.crypto import SecretBox, Signer
from services.auth.lockout import LoginGuard
from services.auth.mfa import totp
from services.auth.mfa.store import MfaStore
from services.auth.security.store import SecurityLog
from services.auth.security.values import Action

MSG_CODE_REQUIRED = "Code is required"
MSG_CODE_SHAPE = "Code must be 6 digits"
MSG_CODE_INVALID = "Invalid or expired code"

TOTP_METHOD = "totp"
RECOVERY_METHOD = "recovery_code"


@dataclass(frozen=True, slots=True)
class MfaSecret:
    """A new TOTP secret for the caller's app, with the code length and period it uses."""

    secret: str
    uri: str
    digits: int = totp.DIGITS
    period: int = totp.PERIOD


class MfaManager:
    """The caller's second factor."""

    def __init__(
        self,
        *,
        store: AuthStore,
        mfa: MfaStore,
        box: SecretBox,
        recovery_signer: Signer,
        guard: LoginGuard,
        log: SecurityLog,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._mfa = mfa
        self._box = box
        self._signer = recovery_signer
        self._guard = guard
        self._log = log
        self._clock = clock

    async def setup(self, *, caller: Caller) -> MfaSecret:
        """A new secret awaiting confirmation; refused while MFA is on."""
        user = await self._user(caller)
        if user.mfa_enabled:
            raise FailedPrecondition(
                "MFA is already enabled; disable it first", reason=reasons.MFA_ALREADY_ENABLED
            )
        secret = totp.new_secret()
        await self._mfa.set_pending(user_id=user.id, sealed_secret=self._box.seal(secret))
        return MfaSecret(secret, totp.provisioning_uri(secret, account=user.email))

    async def enable(self, *, caller: Caller, code: str) -> tuple[Account, list[str]]:
        """Confirm the pending secret with a code; answers the account and recovery codes."""
        code = code.strip()
        violations = Violations()
        if not code:
            violations.add("code", MSG_CODE_REQUIRED)
        elif not totp.is_code_shaped(code):
            violations.add("code", MSG_CODE_SHAPE)
        violations.raise_if_any()
        user = await self._user(caller)
        if user.mfa_enabled:
            raise FailedPrecondition("MFA is already enabled", reason=reasons.MFA_ALREADY_ENABLED)
        pending = await self._mfa.pending_secret(user_id=user.id)
        if pending is None:
            raise FailedPrecondition("Set up MFA first", reason=reasons.MFA_NOT_SET_UP)
        await self._guard.check(user.email)
        now = self._clock()
        secret = self._box.open(pending)
        step = totp.matching_step(secret, code, now=now)
        if step is None or not await self._mfa.use_step(user_id=user.id, step=step):
            await self._guard.failed(user.email)
            violations.add("code", MSG_CODE_INVALID)
            violations.raise_if_any()
        codes = totp.new_recovery_codes()
        await self._mfa.enable(
            user_id=user.id,
            sealed_secret=pending,
            code_digests=[self._digest(c) for c in codes],
            now=now,
        )
        await self._log.record(user_id=user.id, action=Action.MFA_ENABLED, now=now)
        return await self._account(user.id), codes

    async def disable(self, *, caller: Caller, code: str) -> Account:
        """Turn MFA off with a current code or a recovery code."""
        user = await self._checked_code_user(caller, code, allow_recovery=True)
        now = self._clock()
        await self._mfa.disable(user_id=user.id, now=now)
        await self._log.record(user_id=user.id, action=Action.MFA_DISABLED, now=now)
        return await self._account(user.id)

    async def regenerate(self, *, caller: Caller, code: str) -> list[str]:
        """Replace the recovery codes, given a current code from the app."""
        user = await self._checked_code_user(caller, code, allow_recovery=False)
        now = self._clock()
        codes = totp.new_recovery_codes()
        await self._mfa.replace_recovery_codes(
            user_id=user.id, code_digests=[self._digest(c) for c in codes], now=now
        )
        await self._log.record(user_id=user.id, action=Action.RECOVERY_CODES, now=now)
        return codes

    async def check_code(self, *, user: User, code: str, allow_recovery: bool = True) -> str | None:
        """How ``code`` proves the second factor of ``user`` (``totp`` or ``recovery_code``),
        or None when it does not. A code is spent by this check either way it matches.
        """
        sealed = await self._mfa.live_secret(user_id=user.id)
        if sealed is None:
            return None
        code = code.strip()
        now = self._clock()
        if totp.is_code_shaped(code):
            step = totp.matching_step(self._box.open(sealed), code, now=now)
            if step is not None and await self._mfa.use_step(user_id=user.id, step=step):
                return TOTP_METHOD
            return None
        if (
            allow_recovery
            and code
            and await self._mfa.spend_recovery_code(
                user_id=user.id, code_digest=self._digest(code), now=now
            )
        ):
            return RECOVERY_METHOD
        return None

    async def _checked_code_user(self, caller: Caller, code: str, *, allow_recovery: bool) -> User:
        violations = Violations()
        if not code.strip():
            violations.add("code", MSG_CODE_REQUIRED)
        violations.raise_if_any()
        user = await self._user(caller)
        if not user.mfa_enabled:
            raise FailedPrecondition("MFA is not enabled", reason=reasons.MFA_NOT_ENABLED)
        await self._guard.check(user.email)
        if await self.check_code(user=user, code=code, allow_recovery=allow_recovery) is None:
            await self._guard.failed(user.email)
            violations.add("code", MSG_CODE_INVALID)
            violations.raise_if_any()
        return user

    def _digest(self, code: str) -> str:
        # Keyed: recovery codes hold ~49 bits, too few to rely on a plain hash alone.
        return self._signer.sign(totp.normalise_recovery_code(code))

    async def _user(self, caller: Caller) -> User:
        user = await self._store.user_by_id(user_id=caller.subject)
        if user is None:
            raise NotFound("User not found")
        return user

    async def _account(self, user_id: str) -> Account:
        account = await self._store.account(user_id=user_id)
        if account is None:
            raise NotFound("User not found")
        return account

"""gRPC <-> domain translation for ``iot.auth.v1.MfaService``."""

from __future__ import annotations

from iot.auth.v1 import mfa_pb2, mfa_pb2_grpc
from iotkit.context import current_caller
from services.auth.core.servicer import Context
from services.auth.messages import user_message
from services.auth.mfa.service import MfaManager


class MfaServicer(mfa_pb2_grpc.MfaServiceServicer):
    """Each RPC reads its message, calls the MFA logic and builds the answer."""

    def __init__(self, mfa: MfaManager) -> None:
        self._mfa = mfa

    async def SetupMfa(
        self, request: mfa_pb2.SetupMfaRequest, context: Context
    ) -> mfa_pb2.MfaSetup:
        """A new TOTP secret, shown this once."""
        secret = await self._mfa.setup(caller=current_caller())
        return mfa_pb2.MfaSetup(
            secret=secret.secret, otpauth_uri=secret.uri, digits=secret.digits, period=secret.period
        )

    async def EnableMfa(
        self, request: mfa_pb2.EnableMfaRequest, context: Context
    ) -> mfa_pb2.MfaEnabled:
        """Turn MFA on."""
        account, codes = await self._mfa.enable(caller=current_caller(), code=request.code)
        return mfa_pb2.MfaEnabled(user=user_message(account), recovery_codes=codes)

    async def DisableMfa(
        self, request: mfa_pb2.DisableMfaRequest, context: Context
    ) -> mfa_pb2.MfaDisabled:
        """Turn MFA off."""
        account = await self._mfa.disable(caller=current_caller(), code=request.code)
        return mfa_pb2.MfaDisabled(user=user_message(account))

    async def RegenerateRecoveryCodes(
        self, request: mfa_pb2.RegenerateRecoveryCodesRequest, context: Context
    ) -> mfa_pb2.RecoveryCodes:
        """Replace the recovery codes."""
        codes = await self._mfa.regenerate(caller=current_caller(), code=request.code)
        return mfa_pb2.RecoveryCodes(recovery_codes=codes)

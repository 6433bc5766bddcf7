"""gRPC <-> domain translation for ``iot.auth.v1.AuthService``."""

from __future__ import annotations

from typing import Any, TypeAlias

from grpc import aio

from iot.auth.v1 import auth_pb2, auth_pb2_grpc
from iotkit.context import current_caller, current_client
from iotkit.convert import datetime_field, epoch_timestamp, micros_timestamp, timestamp
from iotkit.jwks import to_jwk
from services.auth.core.self_service import SelfService
from services.auth.core.service import AuthService
from services.auth.keys import SigningKeys
from services.auth.messages import login_message, profile_message, user_message
from services.auth.revocations import RevocationLog

Context: TypeAlias = aio.ServicerContext[Any, Any]


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    """Each RPC reads its message, calls the service and builds the answer."""

    def __init__(
        self,
        *,
        service: AuthService,
        self_service: SelfService,
        keys: SigningKeys,
        revocations: RevocationLog,
    ) -> None:
        self._service = service
        self._self_service = self_service
        self._keys = keys
        self._revocations = revocations

    async def Register(
        self, request: auth_pb2.RegisterRequest, context: Context
    ) -> auth_pb2.RegisterResponse:
        """Create an account."""
        account = await self._service.register(
            email=request.email,
            password=request.password,
            display_name=request.display_name if request.HasField("display_name") else None,
            mfa_enabled=request.mfa_enabled,
        )
        return auth_pb2.RegisterResponse(
            user=user_message(account), profile=profile_message(account)
        )

    async def Login(
        self, request: auth_pb2.LoginRequest, context: Context
    ) -> auth_pb2.LoginResponse:
        """Log in with email and password."""
        ip_address, user_agent = current_client()
        tokens = await self._service.login(
            email=request.email,
            password=request.password,
            mfa_code=request.mfa_code if request.HasField("mfa_code") else None,
            ip_address=ip_address,
            user_agent=user_agent,
        )
        return login_message(tokens)

    async def RefreshToken(
        self, request: auth_pb2.RefreshTokenRequest, context: Context
    ) -> auth_pb2.LoginResponse:
        """Rotate a refresh token."""
        return login_message(await self._service.refresh(refresh_token=request.refresh_token))

    async def Logout(
        self, request: auth_pb2.LogoutRequest, context: Context
    ) -> auth_pb2.LogoutResponse:
        """End the caller's session."""
        return auth_pb2.LogoutResponse(
            session_id=await self._service.logout(caller=current_caller())
        )

    async def GetMe(self, request: auth_pb2.GetMeRequest, context: Context) -> auth_pb2.AuthMe:
        """The caller's account."""
        account = await self._service.me(caller=current_caller())
        return auth_pb2.AuthMe(user=user_message(account), profile=profile_message(account))

    async def GetTokenInfo(
        self, request: auth_pb2.GetTokenInfoRequest, context: Context
    ) -> auth_pb2.TokenInfo:
        """What the presented token grants."""
        caller = current_caller()
        return auth_pb2.TokenInfo(
            scopes=sorted(caller.scopes),
            expires_at=epoch_timestamp(caller.expires_at),
            created_at=epoch_timestamp(caller.issued_at),
            token_type=caller.token_type,
            subject=caller.subject,
            session_id=caller.session_id or "",
            role=caller.role,
        )

    async def IssueServiceToken(
        self, request: auth_pb2.IssueServiceTokenRequest, context: Context
    ) -> auth_pb2.ServiceToken:
        """A service token for one of the suite's processes."""
        minted = self._service.exchange_service_secret(
            service=request.service, client_secret=request.client_secret
        )
        return auth_pb2.ServiceToken(
            token=minted.token,
            expires_in=minted.expires_in,
            scopes=minted.scopes,
        )

    async def IssueDeviceToken(
        self, request: auth_pb2.IssueDeviceTokenRequest, context: Context
    ) -> auth_pb2.DeviceToken:
        """The token of a device credential."""
        minted = self._service.device_token(
            device_id=request.device_id,
            owner_id=request.owner_id,
            credential_id=request.credential_id,
            ttl_seconds=request.ttl_seconds,
        )
        return auth_pb2.DeviceToken(
            token=minted.token, expires_at=epoch_timestamp(minted.expires_at), scopes=minted.scopes
        )

    async def GetJwks(self, request: auth_pb2.GetJwksRequest, context: Context) -> auth_pb2.Jwks:
        """The public signing keys."""
        return auth_pb2.Jwks(
            keys=[to_jwk(kid, key) for kid, key in self._keys.public_keys().items()]
        )

    async def ListRevokedSessions(
        self, request: auth_pb2.ListRevokedSessionsRequest, context: Context
    ) -> auth_pb2.RevokedSessions:
        """Sessions revoked since the cursor, for the services that verify tokens locally."""
        revocations, cursor = await self._revocations.since(datetime_field(request, "since"))
        return auth_pb2.RevokedSessions(
            sessions=[
                auth_pb2.RevokedSession(
                    session_id=r.session_id, until=micros_timestamp(int(r.until * 1_000_000))
                )
                for r in revocations
            ],
            cursor=timestamp(cursor),
        )

    async def VerifyEmail(
        self, request: auth_pb2.VerifyEmailRequest, context: Context
    ) -> auth_pb2.VerifyEmailResponse:
        """Verify an email address with the token of its link."""
        account = await self._self_service.verify_email(token=request.token)
        return auth_pb2.VerifyEmailResponse(user=user_message(account))

    async def ResendVerification(
        self, request: auth_pb2.ResendVerificationRequest, context: Context
    ) -> auth_pb2.ResendVerificationResponse:
        """Send a new verification link."""
        email = await self._self_service.resend_verification(caller=current_caller())
        return auth_pb2.ResendVerificationResponse(email=email)

    async def ForgotPassword(
        self, request: auth_pb2.ForgotPasswordRequest, context: Context
    ) -> auth_pb2.ForgotPasswordResponse:
        """Send a reset link if the address has an account."""
        await self._self_service.forgot_password(email=request.email)
        return auth_pb2.ForgotPasswordResponse()

    async def ResetPassword(
        self, request: auth_pb2.ResetPasswordRequest, context: Context
    ) -> auth_pb2.ResetPasswordResponse:
        """Set a new password with the token of a reset link."""
        revoked = await self._self_service.reset_password(
            token=request.token, password=request.password
        )
        return auth_pb2.ResetPasswordResponse(sessions_revoked=revoked)

    async def ChangePassword(
        self, request: auth_pb2.ChangePasswordRequest, context: Context
    ) -> auth_pb2.ChangePasswordResponse:
        """Change the caller's password."""
        revoked = await self._self_service.change_password(
            caller=current_caller(),
            current_password=request.current_password,
            new_password=request.new_password,
        )
        return auth_pb2.ChangePasswordResponse(sessions_revoked=revoked)

"""Asking auth to sign device tokens, with this process's service token."""

from __future__ import annotations

from grpc import aio

from iot.auth.v1 import auth_pb2, auth_pb2_grpc
from iotkit.service_tokens import ServiceTokenSource

CALL_DEADLINE = 5.0


class AuthTokenMinter:
    """A :class:`~services.devices.devices.service.DeviceTokenMinter` backed by auth's
    IssueDeviceToken."""

    def __init__(self, *, channel: aio.Channel, service_tokens: ServiceTokenSource) -> None:
        self._stub = auth_pb2_grpc.AuthServiceStub(channel)
        self._service_tokens = service_tokens

    async def __call__(
        self, *, device_id: str, owner_id: str, credential_id: str, ttl_seconds: int
    ) -> tuple[str, tuple[str, ...]]:
        """The signed token of a credential and its scopes."""
        answer = await self._stub.IssueDeviceToken(
            auth_pb2.IssueDeviceTokenRequest(
                device_id=device_id,
                owner_id=owner_id,
                credential_id=credential_id,
                ttl_seconds=ttl_seconds,
            ),
            timeout=CALL_DEADLINE,
            metadata=await self._service_tokens.metadata(),
        )
        return answer.token, tuple(answer.scopes)

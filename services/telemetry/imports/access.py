"""May this token write that device? The devices service decides; this turns its answer into one.

The kit's :class:`DeviceAccessClient` raises gRPC errors; file import needs
a plain answer (the owner of a device the token may write, or None), and
turns an unreachable devices service into a domain error the caller can retry.
"""

from __future__ import annotations

import grpc

from iotkit.device_access import DeviceAccessClient
from iotkit.errors import Unavailable

# Devices answers these for a token it will not take for this question (a
# site token, say): for the import that is "may not write it", not a failure.
_REFUSALS = frozenset(
    {
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT,
    }
)


class DeviceWriteCheck:
    """Asks devices whether the holder of a token may write a device."""

    def __init__(self, access: DeviceAccessClient) -> None:
        self._access = access

    async def owner(self, *, token: str, device_id: str) -> str | None:
        """The owner of ``device_id`` if ``token`` may write it, else None."""
        if not token:
            return None
        try:
            grant = await self._access.check(token=token, device_id=device_id, access="write")
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _REFUSALS:
                return None
            raise Unavailable("The devices service cannot be reached; try again") from None
        return grant.owner_id if grant.allowed else None

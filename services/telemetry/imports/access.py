"""May this token write that device? The devices service decides; this turns its answer into one.

File import needs a plain answer: the owner of a device the token may write,
or None. The kit's :class:`DeviceAccessClient` already turns a refusal by
devices into "not allowed" and devices being unreachable into Unavailable,
which the caller may retry.
"""

from __future__ import annotations

from iotkit.device_access import DeviceAccessClient


class DeviceWriteCheck:
    """Asks devices whether the holder of a token may write a device."""

    def __init__(self, access: DeviceAccessClient) -> None:
        self._access = access

    async def owner(self, *, token: str, device_id: str) -> str | None:
        """The owner of ``device_id`` if ``token`` may write it, else None."""
        if not token:
            return None
        grant = await self._access.check(token=token, device_id=device_id, access="write")
        return grant.owner_id if grant.allowed else None

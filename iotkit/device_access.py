"""Asking the devices service whether a caller may use a device's data, with a bounded cache.

Telemetry (and later analytics) forwards the caller's own token to
``DeviceService.CheckDeviceAccess``, so devices decides with the caller's
identity, not the asking service's. Answers are cached per (token, device,
access) for the TTL devices gives, at most ``max_age`` seconds, so a revoked
credential stops working within that time.

Every answer of devices becomes a plain grant or a domain error, never a raw
gRPC error: a refusal (devices does not take this token for the question, or
the device is unknown) is "not allowed", so that callers answer their usual
NOT_FOUND; anything else (devices down, overloaded, failing) is
:class:`Unavailable`, which the caller may retry, rather than an INTERNAL.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass

import grpc
from grpc import aio

from iot.devices.v1 import devices_pb2, devices_pb2_grpc
from iotkit.context import bearer_metadata
from iotkit.errors import Unavailable

CALL_DEADLINE = 3.0

# Codes by which devices refuses the question for this caller: a "no", not a failure.
# (UNAUTHENTICATED: devices does not take this kind of token, or it expired meanwhile.)
_REFUSALS = {
    grpc.StatusCode.UNAUTHENTICATED: "unauthenticated",
    grpc.StatusCode.PERMISSION_DENIED: "missing_scope",
    grpc.StatusCode.NOT_FOUND: "not_found",
    grpc.StatusCode.INVALID_ARGUMENT: "not_found",
}


@dataclass(frozen=True, slots=True)
class DeviceGrant:
    """What devices answered about one caller and one device."""

    allowed: bool
    reason: str
    device_id: str
    owner_id: str
    device_type: str


class DeviceAccessClient:
    """Cached access checks against the devices service."""

    def __init__(
        self, channel: aio.Channel, *, max_age: float = 30.0, max_entries: int = 10_000
    ) -> None:
        self._stub = devices_pb2_grpc.DeviceServiceStub(channel)
        self._max_age = max_age
        self._max_entries = max_entries
        self._cache: OrderedDict[tuple[str, str, str], tuple[float, DeviceGrant]] = OrderedDict()

    async def check(self, *, token: str, device_id: str, access: str) -> DeviceGrant:
        """Whether the holder of ``token`` may ``access`` ("read"/"write") ``device_id``.

        A refusal by devices answers a grant that is not allowed (not cached: it
        may be a passing state); devices unreachable or failing raises Unavailable.
        """
        # The token itself is a secret: the cache keys on its digest.
        key = (hashlib.sha256(token.encode()).hexdigest(), device_id, access)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            self._cache.move_to_end(key)
            return cached[1]
        try:
            answer = await self._stub.CheckDeviceAccess(
                devices_pb2.CheckDeviceAccessRequest(device_id=device_id, access=access),
                metadata=bearer_metadata(token),
                timeout=CALL_DEADLINE,
            )
        except aio.AioRpcError as exc:
            reason = _REFUSALS.get(exc.code())
            if reason is not None:
                return DeviceGrant(False, reason, device_id, "", "")
            raise Unavailable("The devices service cannot be reached; try again") from None
        grant = DeviceGrant(
            answer.allowed, answer.reason, device_id, answer.owner_id, answer.device_type
        )
        ttl = min(float(answer.ttl_seconds), self._max_age)
        if ttl > 0:
            self._cache[key] = (now + ttl, grant)
            self._cache.move_to_end(key)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return grant

    def forget(self) -> None:
        """Drop every cached answer."""
        self._cache.clear()

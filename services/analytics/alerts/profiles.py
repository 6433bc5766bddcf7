"""The time zone of a user's profile, asked of auth with the user's own token.

A rule with quiet hours and no ``time_zone`` of its own takes the zone the
user keeps in their profile's metadata (``{"timezone": "Europe/Paris"}``, as
the chat assistant reads it), once, when the rule is saved: messages are
then held in the user's hours even while auth is away.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc
from grpc import aio

from iot.auth.v1 import profile_pb2, profile_pb2_grpc
from iotkit.context import Caller, bearer_metadata
from iotkit.errors import Unavailable

DEADLINE = 5.0
UTC_NAME = "UTC"


class ProfileZones:
    """Reads the caller's profile time zone from auth."""

    def __init__(self, channel: aio.Channel) -> None:
        self._profiles = profile_pb2_grpc.ProfileServiceStub(channel)

    async def zone_of(self, caller: Caller) -> str:
        """The caller's profile time zone; UTC when it has none (or one that is not a zone)."""
        try:
            profile = await self._profiles.GetProfile(
                profile_pb2.GetProfileRequest(),
                metadata=bearer_metadata(caller.token),
                timeout=DEADLINE,
            )
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(
                "Cannot read your profile's time zone now: give the rule a time_zone, or retry"
            ) from exc
        field = profile.metadata.fields.get("timezone")
        name = field.string_value if field is not None else ""
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return UTC_NAME
        return name

"""gRPC <-> domain translation for ``iot.auth.v1.ProfileService``."""

from __future__ import annotations

from google.protobuf import json_format

from iot.auth.v1 import auth_pb2, profile_pb2, profile_pb2_grpc
from iotkit.context import current_caller
from services.auth.core.servicer import Context
from services.auth.messages import profile_value_message
from services.auth.profile.service import ProfileService


class ProfileServicer(profile_pb2_grpc.ProfileServiceServicer):
    """Each RPC reads its message, calls the profile logic and builds the answer."""

    def __init__(self, profiles: ProfileService) -> None:
        self._profiles = profiles

    async def GetProfile(
        self, request: profile_pb2.GetProfileRequest, context: Context
    ) -> auth_pb2.Profile:
        """The caller's profile."""
        return profile_value_message(await self._profiles.get(caller=current_caller()))

    async def UpdateProfile(
        self, request: profile_pb2.UpdateProfileRequest, context: Context
    ) -> auth_pb2.Profile:
        """Change the fields present in the request."""
        profile = await self._profiles.update(
            caller=current_caller(),
            display_name=request.display_name if request.HasField("display_name") else None,
            tags=json_format.MessageToDict(request.tags) if request.HasField("tags") else None,
            metadata=json_format.MessageToDict(request.metadata)
            if request.HasField("metadata")
            else None,
        )
        return profile_value_message(profile)

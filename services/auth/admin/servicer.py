"""gRPC <-> domain translation for ``iot.auth.v1.AdminService``."""

from __future__ import annotations

from iot.auth.v1 import admin_pb2, admin_pb2_grpc
from iotkit.context import current_caller
from iotkit.listing import pagination
from services.auth.admin.service import AdminService
from services.auth.core.servicer import Context
from services.auth.messages import admin_detail_message, admin_summary_message


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    """Each RPC reads its message, calls the admin logic and builds the answer."""

    def __init__(self, admin: AdminService) -> None:
        self._admin = admin

    async def ListUsers(
        self, request: admin_pb2.ListUsersRequest, context: Context
    ) -> admin_pb2.AdminUsers:
        """A page of users."""
        found = await self._admin.list_users(
            page=request.page,
            limit=request.limit,
            search=request.search,
            role=request.role,
            is_active=request.is_active if request.HasField("is_active") else None,
        )
        return admin_pb2.AdminUsers(
            users=[admin_summary_message(account) for account in found.accounts],
            pagination=pagination(found.request, found.total),
        )

    async def GetUser(
        self, request: admin_pb2.GetUserRequest, context: Context
    ) -> admin_pb2.AdminUserDetail:
        """One user with their security summary."""
        return admin_detail_message(await self._admin.get_user(user_id=request.uuid))

    async def UpdateUser(
        self, request: admin_pb2.UpdateUserRequest, context: Context
    ) -> admin_pb2.AdminUserDetail:
        """Change a user's role or status."""
        view = await self._admin.update_user(
            caller=current_caller(),
            user_id=request.uuid,
            role=request.role if request.HasField("role") else None,
            is_active=request.is_active if request.HasField("is_active") else None,
            is_verified=request.is_verified if request.HasField("is_verified") else None,
        )
        return admin_detail_message(view)

"""gRPC <-> domain translation for ``iot.auth.v1.SecurityService``."""

from __future__ import annotations

from iot.auth.v1 import security_pb2, security_pb2_grpc
from iotkit.context import current_caller
from iotkit.listing import pagination
from services.auth.core.servicer import Context
from services.auth.messages import log_entry_message, session_message
from services.auth.security.service import SecurityService


class SecurityServicer(security_pb2_grpc.SecurityServiceServicer):
    """Each RPC reads its message, calls the security logic and builds the answer."""

    def __init__(self, security: SecurityService) -> None:
        self._security = security

    async def ListSecurityLogs(
        self, request: security_pb2.ListSecurityLogsRequest, context: Context
    ) -> security_pb2.SecurityLogs:
        """A page of the caller's security log."""
        found, page = await self._security.logs(
            caller=current_caller(), page=request.page, limit=request.limit, action=request.action
        )
        return security_pb2.SecurityLogs(
            logs=[log_entry_message(event) for event in found.events],
            pagination=pagination(page, found.total),
        )

    async def ListSessions(
        self, request: security_pb2.ListSessionsRequest, context: Context
    ) -> security_pb2.Sessions:
        """The caller's live sessions."""
        views = await self._security.sessions(caller=current_caller())
        return security_pb2.Sessions(sessions=[session_message(view) for view in views])

    async def RevokeSession(
        self, request: security_pb2.RevokeSessionRequest, context: Context
    ) -> security_pb2.RevokeSessionResponse:
        """End one of the caller's sessions."""
        session_id = await self._security.revoke(
            caller=current_caller(), session_id=request.session_id
        )
        return security_pb2.RevokeSessionResponse(session_id=session_id)

    async def RevokeOtherSessions(
        self, request: security_pb2.RevokeOtherSessionsRequest, context: Context
    ) -> security_pb2.RevokeOtherSessionsResponse:
        """End the caller's other sessions."""
        revoked = await self._security.revoke_others(caller=current_caller())
        return security_pb2.RevokeOtherSessionsResponse(revoked=revoked)

"""Service tokens for calls between the suite's own processes.

A process exchanges the suite's service secret (``IOT_SERVICE_SECRET``) for
a short-lived token at auth's ``IssueServiceToken`` (OAuth 2 client
credentials) and renews it before it expires. Only auth signs; the secret
lets a process ask for its own token, never mint one.
"""

from __future__ import annotations

import asyncio
import time

from grpc import aio

from iot.auth.v1 import auth_pb2, auth_pb2_grpc
from iotkit.context import bearer_metadata

RENEW_BEFORE_SECONDS = 30.0
CALL_DEADLINE = 3.0


class ServiceTokenSource:
    """Holds this process's service token and renews it when it is close to expiring."""

    def __init__(self, *, channel: aio.Channel, service: str, secret: str) -> None:
        self._stub = auth_pb2_grpc.AuthServiceStub(channel)
        self._service = service
        self._secret = secret
        self._token = ""
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        """A valid service token, fetched from auth when the held one is near expiry."""
        async with self._lock:
            if time.monotonic() >= self._renew_at:
                request = auth_pb2.IssueServiceTokenRequest(
                    service=self._service, client_secret=self._secret
                )
                answer = await self._stub.IssueServiceToken(request, timeout=CALL_DEADLINE)
                self._token = answer.token
                lifetime = max(answer.expires_in - RENEW_BEFORE_SECONDS, 1.0)
                self._renew_at = time.monotonic() + lifetime
            return self._token

    async def metadata(self) -> list[tuple[str, str]]:
        """Call metadata carrying the service token."""
        return bearer_metadata(await self.token())

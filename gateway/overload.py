"""The gateway's answer past its connection limit: the error envelope, not uvicorn's text.

uvicorn answers a request that arrives while ``limit_concurrency`` connections are
open with its own ``text/plain`` "Service Unavailable"; a client of the API then
meets the one answer it cannot read as an envelope. :class:`GatewayProtocol`
swaps that app for :func:`overloaded`, which answers the same 503 as the
envelope, says when to come back, and closes the connection as uvicorn does.

A class at module level, so that uvicorn's worker processes can import it.
"""

from __future__ import annotations

from typing import Any

from starlette.types import Receive, Scope, Send
from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.flow_control import service_unavailable

from gateway.envelope import error_response
from gateway.errors import GatewayError
from gateway.head_timeout import TimedHeadProtocol

RETRY_AFTER_SECONDS = 1
"""A connection frees up as soon as any client finishes: a short wait is enough."""


async def overloaded(scope: Scope, receive: Receive, send: Send) -> None:
    """The 503 envelope for a request past the connection limit (the connection closes)."""
    error = GatewayError(
        status=503,
        code="SERVICE_UNAVAILABLE",
        message="The gateway is serving as many connections as it may; try again shortly",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS), "Connection": "close"},
    )
    await error_response(error, path=scope.get("path", ""))(scope, receive, send)


class GatewayProtocol(TimedHeadProtocol):
    """:class:`TimedHeadProtocol` whose refusal past the connection limit is an envelope."""

    def _start_asgi_task(self, cycle: Any, app: ASGI3Application) -> None:
        # uvicorn picks its own app for a request past the limit (for a pipelined one
        # too, which starts here later); every request's app passes through this method.
        chosen = overloaded if app is service_unavailable else app
        super()._start_asgi_task(cycle, chosen)  # type: ignore[arg-type]

"""Per-request context: request id, one access-log line, per-route metrics and the
last-resort 500.

A pure ASGI middleware (no response buffering, so Server-Sent Events flow
through). The access line holds method, path, status, duration and request id
only: never a body, a query string, a header or a token. Routes whose path
binds a secret-looking variable are logged by template instead of by path.
The metrics are recorded here rather than by a layer of their own: both want the
answer's status and duration, and each layer wraps every message a request sends.
"""

from __future__ import annotations

import asyncio
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.envelope import error_response
from gateway.errors import internal_error
from gateway.metadata import REQUEST_ID_KEY, header_value, request_id_from
from gateway.metrics import ROUTE_KEY, RouteMetrics
from iotkit.context import request_id_var

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("gateway.access")

LOG_PATH_KEY = "log_path"
"""Key of ``scope["state"]`` where the router leaves the path to log."""

_MAX_LOGGED_PATH = 256
CLIENT_CLOSED = 499
"""Status logged for a request its client gave up on before any answer (nginx's code): the
browser cancelled it (a reload, a page left), and nothing failed here."""


class RequestContextMiddleware:
    """Assigns the request id, echoes it, logs and counts the request and contains crashes."""

    def __init__(self, app: ASGIApp, *, metrics: RouteMetrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_from(header_value(scope["headers"], REQUEST_ID_KEY))
        echoed = (REQUEST_ID_KEY, request_id.encode("latin-1"))
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        token = request_id_var.set(request_id)
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            if not response_started:
                status = CLIENT_CLOSED
            raise
        except Exception:
            # Tracebacks go to the log only; the caller gets a generic envelope.
            logger.exception("unhandled error serving %s", scope.get("method"))
            if not response_started:
                response = error_response(internal_error(), path=scope.get("path", ""))
                await response(scope, receive, send_with_id)
        finally:
            if access_logger.isEnabledFor(logging.INFO):
                _log_access(scope, state, status, started, request_id)
            request_id_var.reset(token)
            if self.metrics is not None:
                self.metrics.record(
                    scope.get("method", ""),
                    state.get(ROUTE_KEY),
                    status,
                    time.perf_counter() - started,
                )


def _log_access(
    scope: Scope, state: dict[str, object], status: int, started: float, request_id: str
) -> None:
    """The request's access line (built only when the level lets it through)."""
    path = str(state.get(LOG_PATH_KEY) or scope.get("path", ""))[:_MAX_LOGGED_PATH]
    access_logger.info(
        "%s %s %s",
        scope.get("method"),
        path,
        status,
        extra={
            "method": scope.get("method"),
            "path": path,
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "request_id": request_id,
        },
    )

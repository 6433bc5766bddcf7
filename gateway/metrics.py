"""Per-route Prometheus series of the gateway: requests by route and status, and durations.

A pure ASGI middleware, like the request-context one, so Server-Sent Events
flow through unbuffered (a stream's duration is how long it stayed open).
Routes are labelled by their template (``/v1/devices/{device_id}``), which
the dispatcher leaves in ``scope["state"]``: a label per raw path would
grow a series for every id ever requested, and could carry a one-time token
from a link. Requests no route matched share one label, and methods outside
HTTP's usual few share ``other``, for the same reason.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from iotkit.metrics import ProcessMetrics

ROUTE_KEY = "route_template"
"""Key of ``scope["state"]`` where the dispatcher leaves the matched route's template."""

UNMATCHED = "(unmatched)"
"""The route label of requests that matched no route."""

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RouteMetrics:
    """``iot_http_requests_total`` and ``iot_http_request_duration_seconds``, per route."""

    def __init__(self, app: ASGIApp, *, metrics: ProcessMetrics) -> None:
        self.app = app
        self._requests = metrics.counter(
            "iot_http_requests_total",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
        )
        self._duration = metrics.histogram(
            "iot_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by method and route.",
            ("method", "route"),
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection, counting HTTP requests."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        started = time.perf_counter()
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            method = scope.get("method", "")
            method = method if method in _METHODS else "other"
            route = str(state.get(ROUTE_KEY) or UNMATCHED)
            key = (method, route, status)
            children = self._children.get(key)
            if children is None:
                # A labelled child is looked up (labels checked, a lock taken) once per
                # method, route template and status: few, since routes are templates.
                children = (
                    self._requests.labels(method, route, str(status)),
                    self._duration.labels(method, route),
                )
                self._children[key] = children
            children[0].inc()
            children[1].observe(time.perf_counter() - started)

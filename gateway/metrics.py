"""Per-route Prometheus series of the gateway: requests by route and status, and durations.

Recorded by the request-context layer (:mod:`gateway.middleware`) as each answer ends,
so Server-Sent Events flow through unbuffered (a stream's duration is how long it stayed
open). Routes are labelled by their template (``/v1/devices/{device_id}``), which the
dispatcher leaves in ``scope["state"]``: a label per raw path would grow a series for
every id ever requested, and could carry a one-time token from a link. Requests no route
matched share one label, and methods outside HTTP's usual few share ``other``, for the
same reason.
"""

from __future__ import annotations

from typing import Any

from iotkit.metrics import ProcessMetrics

ROUTE_KEY = "route_template"
"""Key of ``scope["state"]`` where the dispatcher leaves the matched route's template."""

UNMATCHED = "(unmatched)"
"""The route label of requests that matched no route."""

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RouteMetrics:
    """``iot_http_requests_total`` and ``iot_http_request_duration_seconds``, per route."""

    def __init__(self, metrics: ProcessMetrics) -> None:
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

    def record(self, method: str, route: object, status: int, seconds: float) -> None:
        """Count one answered request of ``route`` (None: no route matched)."""
        method = method if method in _METHODS else "other"
        label = str(route or UNMATCHED)
        key = (method, label, status)
        children = self._children.get(key)
        if children is None:
            # A labelled child is looked up (labels checked, a lock taken) once per
            # method, route template and status: few, since routes are templates.
            children = (
                self._requests.labels(method, label, str(status)),
                self._duration.labels(method, label),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

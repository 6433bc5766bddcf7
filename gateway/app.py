"""The gateway application: ``build_app(settings)`` assembles routes, channels and middleware.

Nothing is created at import time. Channels and the ``/metrics`` endpoint open
in the Starlette lifespan (inside the serving event loop) and close at shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
from opentelemetry import trace
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.comments import load_comments
from gateway.compression import compression
from gateway.console import STATIC_DIR, console_routes
from gateway.discovery import RpcMethod, discover, proto_files
from gateway.envelope import EnvelopeResponse, error_response, success_response
from gateway.errors import GatewayError
from gateway.metrics import ROUTE_KEY, RouteMetrics
from gateway.middleware import LOG_PATH_KEY, RequestContextMiddleware
from gateway.openapi import build_openapi
from gateway.proxy import MAX_BODY_BYTES, MAX_UPLOAD_BYTES, RpcHandler, timed_receive
from gateway.rate_limits import RateLimitMiddleware, RateLimits, window_counter
from gateway.routing import Route, RouteTable
from gateway.settings import DEFAULT_BODY_TIMEOUT, gateway_settings
from gateway.templates import PathTemplate, parse_template
from gateway.upstream import DEFAULT_DEADLINE_SECONDS, Upstreams
from iotkit import __version__, tracing
from iotkit.config import GATEWAY, Settings
from iotkit.metrics import ProcessMetrics

HEALTH_PATH = "/healthz"
OPENAPI_PATH = "/openapi.json"

# Path variables whose values must not reach the access log (one-time tokens in links).
_SECRET_WORDS = ("token", "secret", "password", "code", "key")


async def healthz(request: Request, params: Mapping[str, str]) -> Response:
    """Gateway liveness: the process serves HTTP (services are not checked)."""
    return success_response({"status": "ok"})


class OpenApiDocument:
    """``/openapi.json``, built on first request (it compiles the protos for comments) and kept."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self._routes = routes
        self._document: dict[str, Any] | None = None
        self._lock = asyncio.Lock()

    async def document(self) -> dict[str, Any]:
        """The OpenAPI document."""
        async with self._lock:
            if self._document is None:
                comments = await anyio.to_thread.run_sync(load_comments)
                self._document = build_openapi(self._routes, comments=comments, version=__version__)
        return self._document

    async def __call__(self, request: Request, params: Mapping[str, str]) -> Response:
        """Serve the document as bare JSON, as OpenAPI tools expect."""
        return EnvelopeResponse(await self.document())


def _raw_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace")
    return quote(scope.get("path", "/"))


def _headers_only(send: Send) -> Send:
    """``send`` for a HEAD request: the status and headers of the GET answer, no body.

    The answer ends with its headers, so that a streaming GET (Server-Sent Events)
    does not hold the connection; what the handler still sends is dropped.
    """
    ended = False

    async def send_headers(message: Message) -> None:
        nonlocal ended
        if ended or message["type"] != "http.response.start":
            return
        await send(message)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        ended = True

    return send_headers


def _name_route(scope: Scope, route: str) -> None:
    """Leave the matched route's template for the metrics, and name the request's span by it
    (the span starts before any route is known)."""
    scope.setdefault("state", {})[ROUTE_KEY] = route
    if not tracing.enabled():
        return  # no span to name
    span = trace.get_current_span()
    if span.is_recording():
        span.update_name(f"{scope.get('method', '')} {route}")
        span.set_attribute("http.route", route)


def _log_path(template: PathTemplate) -> str | None:
    """What the access log shows of the paths of ``template`` binding a secret-looking
    variable (the template itself), or None for the paths themselves."""
    if any(word in var.name.lower() for var in template.variables for word in _SECRET_WORDS):
        return template.openapi_path()
    return None


class Dispatcher:
    """The one ASGI endpoint: matches the route table and renders GatewayErrors as envelopes."""

    def __init__(self, table: RouteTable, *, body_timeout: float = DEFAULT_BODY_TIMEOUT) -> None:
        self.table = table
        self.body_timeout = body_timeout
        # Decided once per template rather than on every request.
        self._log_paths = {id(route.template): _log_path(route.template) for route in table.routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request."""
        # The response gets the plain receive: a body it never read is not its to time.
        request = Request(scope, timed_receive(receive, self.body_timeout))
        try:
            matched = self.table.match(request.method, _raw_path(scope))
            template = matched.route.template
            _name_route(scope, template.source)
            key = id(template)
            log_path = self._log_paths[key] if key in self._log_paths else _log_path(template)
            if log_path is not None:
                scope.setdefault("state", {})[LOG_PATH_KEY] = log_path
            response = await matched.route.handler(request, matched.params)
        except GatewayError as error:
            response = error_response(error, path=request.url.path)
        await response(scope, receive, _headers_only(send) if request.method == "HEAD" else send)


class GatewayApp(Starlette):
    """A Starlette app whose HTTP requests go through its own middleware to the dispatcher
    alone.

    Starlette puts three layers of its own around every request: the server-error layer
    (the request-context layer already answers the last-resort 500), the exception layer
    (nothing here raises Starlette's HTTPException: failures are GatewayErrors, rendered by
    the dispatcher) and the router, whose only route is its default, the dispatcher. Each
    wraps every message sent; together they cost a cheap read a few microseconds. The
    lifespan still goes through the router.
    """

    def build_middleware_stack(self) -> ASGIApp:
        """The user middleware around a switch: HTTP to the dispatcher, the rest to the
        router."""
        app: ASGIApp = _ByType(http=self.router.default, other=self.router)
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return app


class _ByType:
    """Sends HTTP requests to one app and every other scope (the lifespan) to another."""

    def __init__(self, *, http: ASGIApp, other: ASGIApp) -> None:
        self.http = http
        self.other = other

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection."""
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        else:
            await self.other(scope, receive, send)


def _cors(origins: Sequence[str]) -> list[Middleware]:
    """Cross-origin access for the pages of ``origins`` (none: same origin only)."""
    if not origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(origins),
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["authorization", "content-type", "last-event-id", "x-request-id"],
            expose_headers=["x-request-id", "retry-after", "content-disposition"],
            max_age=600,
        )
    ]


def build_app(
    settings: Settings,
    *,
    methods: Sequence[RpcMethod] | None = None,
    deadline: float = DEFAULT_DEADLINE_SECONDS,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    static_dir: Path = STATIC_DIR,
) -> Starlette:
    """The gateway app for ``settings``.

    ``methods`` defaults to every HTTP-annotated RPC of the generated ``iot``
    package; tests pass their own (see ``gateway.discovery.discover``).
    Raises DiscoveryError or RouteConflict when the annotations cannot be served.
    """
    rpc_methods = list(methods) if methods is not None else discover(proto_files())
    upstreams = Upstreams(settings, {method.upstream for method in rpc_methods})
    rpc_routes = [
        Route(
            binding.verb,
            binding.template,
            RpcHandler(
                method,
                binding,
                upstreams,
                deadline=deadline,
                max_body_bytes=max_body_bytes,
                max_upload_bytes=max_upload_bytes,
            ),
            rpc=method,
            binding=binding,
        )
        for method in rpc_methods
        for binding in method.bindings
    ]
    own_routes = [
        Route("GET", parse_template(HEALTH_PATH), healthz),
        Route("GET", parse_template(OPENAPI_PATH), OpenApiDocument(rpc_routes)),
        *console_routes(static_dir),
    ]
    table = RouteTable([*rpc_routes, *own_routes])
    table.check_reserved(route.template.source for route in own_routes)
    metrics = ProcessMetrics(GATEWAY)

    own = gateway_settings(settings)
    limits = RateLimits(
        per_client=own.gateway_rate_per_client, per_token=own.gateway_rate_per_token
    )
    counter = window_counter(settings.redis_url)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await upstreams.open()
        metrics.start(settings.metrics_address(GATEWAY), alternates=own.gateway_workers)
        try:
            yield
        finally:
            await metrics.aclose()
            await upstreams.close()
            await counter.aclose()

    # The request-context middleware is outermost but for tracing, so its access line and
    # metrics see every answer (and, inside the request's span, the line carries its trace
    # id); a browser's preflight is answered before it counts against a rate limit.
    app = GatewayApp(
        middleware=[
            *_tracing(),
            Middleware(RequestContextMiddleware, metrics=RouteMetrics(metrics)),
            *_cors(own.cors_origins),
            # Left out when both limits are off: a layer that would only pass requests on.
            *(
                [Middleware(RateLimitMiddleware, limits=limits, counter=counter)]
                if limits.active
                else []
            ),
            *compression(),
        ],
        lifespan=lifespan,
    )
    # The dispatcher is the router's default, reached by every request whatever its method
    # and path (GatewayApp sends HTTP to it directly): a Starlette route pattern would not
    # match a path holding a newline, whose 404 would then be Starlette's plain text
    # instead of the envelope.
    app.router.default = Dispatcher(table, body_timeout=own.gateway_body_timeout)
    app.state.route_table = table
    app.state.upstreams = upstreams
    app.state.metrics = metrics
    return app


def _tracing() -> list[Middleware]:
    """OpenTelemetry's ASGI middleware when tracing is on (see :mod:`iotkit.tracing`)."""
    if not tracing.enabled():
        return []
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    # Probes would bury the traces worth reading, as health checks do on the services; a span
    # per ASGI message (each SSE event) would too.
    return [
        Middleware(
            OpenTelemetryMiddleware, excluded_urls=HEALTH_PATH, exclude_spans=["receive", "send"]
        )
    ]

"""The server interceptor chain every service runs.

In order, for every RPC: a request id and the client's address in context,
authentication and scope checks from the method's proto rules, the call
itself, mapping of domain errors to rich statuses (and of a dependency that is
down to UNAVAILABLE), counters and Prometheus series, and one JSON log line. It is one interceptor
so that the log line sees the final status code.
"""

from __future__ import annotations

import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc import aio

from iotkit import outages, reasons
from iotkit.context import Caller, caller_var, peer_var, request_id_var
from iotkit.errors import (
    DomainError,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
    internal_status,
    to_grpc_status,
)
from iotkit.outages import is_outage, outage
from iotkit.rpc_metrics import SERVER_FAULTS, RpcMetrics
from iotkit.rules import access_rule
from iotkit.screening import Refused, screening_deserializer
from iotkit.tokens import LEEWAY_SECONDS, TokenVerifier

# Calls made on a timer by the suite itself, logged only at DEBUG when they succeed: under
# `iot up` with 100 simulated devices, telemetry's activity reports alone wrote 35 INFO
# lines a second, and the revocation and device-event polls one every few seconds idle.
ROUTINE_METHODS = frozenset(
    {
        "/iot.auth.v1.AuthService/ListRevokedSessions",
        "/iot.auth.v1.AuthService/GetJwks",
        "/iot.devices.v1.DeviceService/RecordDeviceActivity",
        "/iot.devices.v1.DeviceService/ListDeviceEvents",
        "/grpc.health.v1.Health/Check",
    }
)

log = logging.getLogger("iotkit.rpc")

SessionCheck = Callable[[Caller], Awaitable[bool]]
"""Answers False when the caller's session has been revoked."""

# Served while the database is not there yet: probes, tools and the status need them.
_ALWAYS = ("/grpc.health.", "/grpc.reflection.", "/iot.system.v1.DiagnosticsService/")
NOT_READY = "The service is starting: its database is not reachable yet; retry shortly"


@dataclass(slots=True)
class RequestCounters:
    """RPCs answered since start, and how many failed on the server side."""

    total: int = 0
    errors: int = 0
    by_code: dict[str, int] = field(default_factory=dict)

    def record(self, code: grpc.StatusCode) -> None:
        """Count one answered RPC."""
        self.total += 1
        self.by_code[code.name] = self.by_code.get(code.name, 0) + 1
        if code in SERVER_FAULTS:
            self.errors += 1


def _metadata(context: aio.ServicerContext[Any, Any]) -> dict[str, str]:
    return {
        key: value for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)
    }


def _screened(request: Any, *, streamed: bool) -> Any:
    """The request, or the iterator of a streamed one, raising what screening refused."""
    if streamed:
        return _screened_stream(request)
    if type(request) is Refused:
        raise request.error
    return request


async def _screened_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        if type(request) is Refused:
            raise request.error
        yield request


class _CallState:
    """What one RPC learned on its way through the chain."""

    __slots__ = ("code", "started")

    def __init__(self) -> None:
        self.code = grpc.StatusCode.OK
        self.started = time.perf_counter()


class ServiceInterceptor(aio.ServerInterceptor):
    """Request ids, authentication, scopes, error mapping, counters, metrics and logs."""

    def __init__(
        self,
        *,
        verifier: TokenVerifier | None,
        counters: RequestCounters,
        session_check: SessionCheck | None = None,
        ready: Callable[[], bool] | None = None,
        metrics: RpcMetrics | None = None,
    ) -> None:
        self._verifier = verifier
        self._counters = counters
        self._metrics = metrics
        self._session_check = session_check
        self._ready = ready
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Wrap the method's behaviour with the chain."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        # gRPC asks on every call; the servicer's handler of a method is the same object each
        # time, so its wrapping is made once.
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                screening_deserializer(handler.request_deserializer),
                handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(method, handler.stream_unary, streamed=True),
                screening_deserializer(handler.request_deserializer),
                handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream),
                screening_deserializer(handler.request_deserializer),
                handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            self._wrap_stream(method, handler.stream_stream, streamed=True),
            screening_deserializer(handler.request_deserializer),
            handler.response_serializer,
        )

    def _wrap_unary(
        self, method: str, behavior: Callable[..., Any], *, streamed: bool = False
    ) -> Callable[..., Any]:
        async def wrapped(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            state = _CallState()
            try:
                await self._enter(method, context)
                return await behavior(_screened(request, streamed=streamed), context)
            except BaseException as exc:
                await self._fail(exc, context, state, method)
                raise
            finally:
                self._finish(method, context, state)

        return wrapped

    def _wrap_stream(
        self, method: str, behavior: Callable[..., Any], *, streamed: bool = False
    ) -> Callable[..., Any]:
        async def wrapped(
            request: Any, context: aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            state = _CallState()
            try:
                await self._enter(method, context)
                result = behavior(_screened(request, streamed=streamed), context)
                if inspect.isasyncgen(result):
                    async for item in result:
                        # A live stream outlasts its checks: nothing more once the session ends
                        # or the user's token expires.
                        await self._check_caller(caller_var.get(), expiry=True)
                        yield item
                else:  # a servicer that writes with context.write and returns
                    await result
            except BaseException as exc:
                await self._fail(exc, context, state, method)
                raise
            finally:
                self._finish(method, context, state)

        return wrapped

    async def _enter(self, method: str, context: aio.ServicerContext[Any, Any]) -> None:
        metadata = _metadata(context)
        request_id_var.set(metadata.get("x-request-id") or uuid.uuid4().hex)
        # The gateway appends the address it saw last; earlier entries are the client's say-so.
        forwarded = metadata.get("x-forwarded-for", "").split(",")[-1].strip()
        agent = metadata.get("x-forwarded-user-agent") or metadata.get("user-agent", "")
        peer_var.set((forwarded or context.peer() or "", agent))
        caller_var.set(None)
        if self._ready is not None and not self._ready() and not method.startswith(_ALWAYS):
            raise Unavailable(NOT_READY, retry_after=outages.RETRY_AFTER)
        rule = access_rule(method)
        header = metadata.get("authorization", "")
        if rule.public and not (rule.token_optional and header):
            return
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Authentication required")
        if self._verifier is None:
            raise Unauthenticated("This service does not accept tokens")
        caller = await self._verifier.verify(token.strip(), token_types=rule.token_types)
        await self._check_caller(caller)
        missing = rule.scopes - caller.scopes
        if missing:
            raise PermissionDenied(
                "Token lacks the scope this operation needs",
                reason=reasons.MISSING_SCOPE,
                metadata={"required": " ".join(sorted(missing))},
            )
        caller_var.set(caller)

    async def _check_caller(self, caller: Caller | None, *, expiry: bool = False) -> None:
        """Raise Unauthenticated when ``caller``'s session has been revoked, or with ``expiry``
        when the caller's access token has expired since it was verified."""
        if caller is None:
            return
        # Only a user's token: the suite's own long streams (telemetry to analytics) carry a
        # service token for as long as the stream lives, and devices' tokens are long-lived.
        if (
            expiry
            and caller.token_type == "access"
            and caller.expires_at + LEEWAY_SECONDS < time.time()
        ):
            raise Unauthenticated("Invalid or expired token")
        if self._session_check is not None and not await self._session_check(caller):
            raise Unauthenticated("Invalid or expired token")

    async def _fail(
        self,
        exc: BaseException,
        context: aio.ServicerContext[Any, Any],
        state: _CallState,
        method: str,
    ) -> None:
        if isinstance(exc, DomainError):
            status = to_grpc_status(exc)
        elif isinstance(exc, aio.AbortError):
            state.code = context.code() or grpc.StatusCode.UNKNOWN
            return
        elif isinstance(exc, Exception) and (context.cancelled() or context.done()):
            # The peer went away or the server is stopping mid-call: not a server error.
            state.code = grpc.StatusCode.CANCELLED
            return
        elif isinstance(exc, aio.BaseError):
            # gRPC's runtime ended the call under the servicer (the server stopped, or the
            # call finished) a moment before the context says so: worth a line, not a trace.
            log.warning(
                "call ended by the gRPC runtime",
                extra={"method": method, "error": type(exc).__name__, "details": str(exc)},
            )
            state.code = grpc.StatusCode.CANCELLED
            return
        elif isinstance(exc, NotImplementedError):
            # grpc's generated base servicer raises it for a method the servicer lacks (the
            # health service's List): the caller asked for something absent, not a bug.
            state.code = grpc.StatusCode.UNIMPLEMENTED
            await context.abort(state.code, "Method not implemented")
            return
        elif isinstance(exc, Exception) and is_outage(exc):
            # A dependency is down: the caller may retry, and nothing here is a bug.
            log.warning(
                "dependency unavailable",
                extra={"method": method, "error": type(exc).__name__},
            )
            status = to_grpc_status(outage())
        elif isinstance(exc, Exception):
            log.exception("unhandled error", extra={"method": method})
            status = internal_status()
        else:  # cancellation and exits belong to the runtime
            state.code = grpc.StatusCode.CANCELLED
            return
        state.code = status.code
        await context.abort(status.code, status.details, status.trailing_metadata)

    def _finish(
        self, method: str, context: aio.ServicerContext[Any, Any], state: _CallState
    ) -> None:
        self._counters.record(state.code)
        seconds = time.perf_counter() - state.started
        if self._metrics is not None:
            self._metrics.record(method, state.code, seconds)
        # Every service polls for revocations four times a second: routine, not news.
        routine = method in ROUTINE_METHODS and state.code == grpc.StatusCode.OK
        level = logging.DEBUG if routine else logging.INFO
        if not log.isEnabledFor(level):
            return  # the line's fields are not worth building for nobody
        log.log(
            level,
            "rpc",
            extra={
                "method": method,
                "grpc_code": state.code.name,
                "duration_ms": round(seconds * 1000, 2),
                "peer": peer_var.get()[0],
            },
        )

"""OpenTelemetry traces, on only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

A process calls :func:`configure_tracing` once at start; with the variable
unset nothing is installed and every helper here answers "nothing to add",
so the suite pays for no tracing it does not use. With it set, spans go to
that OTLP (gRPC) endpoint in batches, and the usual ``OTEL_*`` variables
(service name, sampler, headers) apply.

Where context travels:

- Servers get OpenTelemetry's gRPC server interceptor, outermost, so the
  kit's own interceptor (and its log lines) run inside the call's span.
- The suite's service-to-service channels get its *unary-unary* client
  interceptor only. Streaming calls keep plain channels: a client
  interceptor on a ``grpc.aio`` stream wraps the call in an intercepted one,
  and under a database outage the forwarder's long stream then failed with
  INTERNAL "Internal error from Core" where it should have been retried.
  A streaming call that should join the caller's trace passes
  :func:`trace_metadata` explicitly, as the gateway does for every call.
- Health checks and the revocation poll (four a second per process) make
  no spans: they would bury the traces worth reading.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from grpc import aio
from opentelemetry import propagate, trace

ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"
"""Set to an OTLP gRPC endpoint (``http://collector:4317``) to turn tracing on."""

UNTRACED_METHODS = ("/iot.auth.v1.AuthService/ListRevokedSessions",)
"""Routine calls the suite makes on a timer; see the module docstring."""

_provider: Any = None  # the SDK's TracerProvider once tracing is on


def configure_tracing(process: str, environ: Mapping[str, str] | None = None) -> bool:
    """Turn tracing on for ``process`` when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set;
    answers whether it is on."""
    environ = os.environ if environ is None else environ
    if not environ.get(ENDPOINT_VARIABLE):
        return False
    # Imported only here: a process without tracing never loads the SDK or the exporter.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = environ.get("OTEL_SERVICE_NAME") or f"iotsuite-{process}"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install(provider)
    return True


def install(provider: Any) -> None:
    """Use ``provider`` (an SDK ``TracerProvider``) for every span of the process; tests pass
    one with an in-memory exporter."""
    global _provider
    _provider = provider
    trace.set_tracer_provider(provider)


def enabled() -> bool:
    """True once tracing is on in this process."""
    return _provider is not None


def shutdown() -> None:
    """Send the spans still buffered; call as the process ends."""
    if _provider is not None:
        _provider.shutdown()


def _traced() -> Any:
    from opentelemetry.instrumentation.grpc import filters

    return filters.negate(
        filters.any_of(
            filters.health_check(),
            *(filters.full_method_name(method) for method in UNTRACED_METHODS),
        )
    )


def server_interceptors() -> list[aio.ServerInterceptor]:
    """The interceptors a server puts first: OpenTelemetry's when tracing is on, else none."""
    if _provider is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor(tracer_provider=_provider, filter_=_traced())]


def client_interceptors() -> list[aio.ClientInterceptor]:
    """A channel's interceptors: OpenTelemetry's unary-unary one when tracing is on, else none
    (never a streaming one; see the module docstring)."""
    if _provider is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return [
        interceptor
        for interceptor in aio_client_interceptors(tracer_provider=_provider, filter_=_traced())
        if isinstance(interceptor, aio.UnaryUnaryClientInterceptor)
    ]


def trace_metadata() -> list[tuple[str, str]]:
    """gRPC metadata carrying the current span's context (``traceparent``); empty when there
    is no span, or tracing is off (then no span is ever recorded: asking the propagators
    would cost every call a few microseconds for nothing)."""
    if _provider is None:
        return []
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return list(carrier.items())


def current_trace_id() -> str | None:
    """The trace id of the current span as 32 hex digits, or None outside a recorded trace."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None

"""Build a service's ``grpc.aio`` server, then serve it until a signal.

Building is separate from serving so that tests start the very same server
on port 0. Every server gets the interceptor chain (OpenTelemetry's first when
tracing is on), the standard health service, reflection and the
DiagnosticsService.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from iot.system.v1 import system_pb2, system_pb2_grpc
from iotkit import tracing
from iotkit.checks import DependencyCheck
from iotkit.config import split_addresses
from iotkit.diagnostics import DiagnosticsServicer
from iotkit.interceptors import RequestCounters, ServiceInterceptor, SessionCheck
from iotkit.metrics import ProcessMetrics
from iotkit.rpc_metrics import RpcMetrics
from iotkit.tokens import TokenVerifier

log = logging.getLogger(__name__)

Registrar = Callable[[aio.Server], Sequence[str]]
"""Adds a service's servicers to the server; answers their full service names."""

# Chart answers and 10 MiB JSON bodies exceed gRPC's 4 MiB default.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024

CLOSE_STEP_SECONDS = 10.0
"""Longest wait for one step of closing a process (beyond the server's grace): a step that
has not finished by then is logged by name and left behind, so that one stuck close (a gRPC
server whose shutdown is never reported, a closer awaiting a task that will not end) cannot
keep the process, or a test's teardown, from ending."""


@dataclass(slots=True)
class ServiceProcess:
    """A service's built server and what must be closed after it stops."""

    built: BuiltServer
    closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    metrics: ProcessMetrics | None = None
    """The process's Prometheus series (``metrics.port`` is where they are served, if so)."""

    @property
    def port(self) -> int:
        """The bound port."""
        return self.built.port

    async def aclose(self, grace: float = 0.5) -> None:
        """Stop the server, then close databases and channels, newest first; each step
        waits at most :data:`CLOSE_STEP_SECONDS` (see there)."""
        await bounded_step(self.built.stop(grace), "server stop", grace + CLOSE_STEP_SECONDS)
        await self.close_resources()

    async def close_resources(self) -> None:
        """Close what the server used (databases, channels, background tasks), newest
        first, once it has stopped."""
        for close in reversed(self.closers):
            await bounded_step(close(), _name_of(close), CLOSE_STEP_SECONDS)


async def bounded_step(step: Awaitable[Any], name: str, seconds: float) -> None:
    """Await ``step`` for up to ``seconds``; past that, log ``name`` and leave it behind
    (cancelled, not awaited: a step that ignores cancellation would hang its awaiter too).
    The step's own exception is raised as usual."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        log.error(
            "closing step did not finish; left behind", extra={"step": name, "seconds": seconds}
        )
        return
    task.result()


def _name_of(close: Callable[[], Awaitable[Any]]) -> str:
    return str(getattr(close, "__qualname__", None) or repr(close))


@dataclass(slots=True)
class BuiltServer:
    """A server ready to start, with its bound port and its health servicer."""

    server: aio.Server
    port: int
    health: health.aio.HealthServicer
    service_names: tuple[str, ...]
    counters: RequestCounters
    ready: asyncio.Event | None = None
    """Set when the process can serve (its database answered); None when it always can."""
    _becoming_ready: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start serving and report SERVING for every service, or NOT_SERVING until
        ``ready`` is set."""
        await self.server.start()
        if self.ready is None or self.ready.is_set():
            await self._report(health_pb2.HealthCheckResponse.SERVING)
            return
        await self._report(health_pb2.HealthCheckResponse.NOT_SERVING)
        self._becoming_ready = asyncio.create_task(self._serving_when_ready())

    async def _serving_when_ready(self) -> None:
        assert self.ready is not None
        await self.ready.wait()
        await self._report(health_pb2.HealthCheckResponse.SERVING)
        log.info("serving: its database answered", extra={"port": self.port})

    async def _report(self, status: Any) -> None:
        for name in ("", *self.service_names):
            await self.health.set(name, status)

    async def stop(self, grace: float) -> None:
        """Report NOT_SERVING, then let in-flight calls finish for up to ``grace`` seconds."""
        if self._becoming_ready is not None:
            self._becoming_ready.cancel()
        await self._report(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(grace)


def build_server(
    *,
    service: str,
    register: Registrar,
    verifier: TokenVerifier | None,
    checks: Sequence[DependencyCheck] = (),
    session_check: SessionCheck | None = None,
    address: str = "127.0.0.1:0",
    counters: RequestCounters | None = None,
    diagnostics: DiagnosticsServicer | None = None,
    ready: asyncio.Event | None = None,
    metrics: ProcessMetrics | None = None,
) -> BuiltServer:
    """Build the server of ``service`` bound to ``address`` (port 0 picks a free port).

    A process that reads its own diagnostics (auth, for the system status)
    passes in the ``counters`` and ``diagnostics`` it holds; others get fresh ones.
    Until ``ready`` is set (when given), health says NOT_SERVING and every call
    but health, reflection and diagnostics answers UNAVAILABLE. Each answered
    call is counted in ``metrics``' registry when given.
    """
    counters = counters or RequestCounters()
    server = aio.server(
        interceptors=[
            *tracing.server_interceptors(),
            ServiceInterceptor(
                verifier=verifier,
                counters=counters,
                session_check=session_check,
                ready=ready.is_set if ready is not None else None,
                metrics=RpcMetrics(metrics) if metrics is not None else None,
            ),
        ],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            # Without this a second process could silently share the port with the first.
            ("grpc.so_reuseport", 0),
        ],
    )
    names = list(register(server))
    diagnostics = diagnostics or DiagnosticsServicer(
        service=service, checks=checks, counters=counters
    )
    # Only what ``register`` added is an API: health, reflection and diagnostics every
    # process serves, so they say nothing of what it offers.
    diagnostics.serves(names)
    system_pb2_grpc.add_DiagnosticsServiceServicer_to_server(diagnostics, server)
    names.append(system_pb2.DESCRIPTOR.services_by_name["DiagnosticsService"].full_name)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind {address}")
    return BuiltServer(server, port, health_servicer, tuple(names), counters, ready)


async def serve_until_signal(built: BuiltServer, *, service: str, grace: float) -> None:
    """Start ``built`` and serve until SIGTERM or SIGINT, then drain and stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await built.start()
    log.info("serving", extra={"service": service, "port": built.port})
    await stop.wait()
    log.info("draining", extra={"service": service, "grace_seconds": grace})
    await bounded_step(built.stop(grace), "server stop", grace + CLOSE_STEP_SECONDS)
    log.info("stopped", extra={"service": service})


def target(address: str) -> str:
    """The gRPC target of ``address``: itself, or for a comma-separated list of replicas
    (IP literals, as the configuration checks) the ``ipv4:``/``ipv6:`` target naming them all."""
    parts = split_addresses(address)
    if len(parts) < 2:
        return address
    return ("ipv6:" if parts[0].startswith("[") else "ipv4:") + ",".join(parts)


def channel(address: str, *, traced: bool = True) -> aio.Channel:
    """An insecure channel to another service of the suite (to every replica of a list).

    With tracing on, its unary calls carry the caller's trace (see :mod:`iotkit.tracing`);
    ``traced=False`` for a caller that passes :func:`~iotkit.tracing.trace_metadata` itself.
    """
    return aio.insecure_channel(
        target(address),
        interceptors=tracing.client_interceptors() if traced else None,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            # Spread calls over every address a name resolves to (replicas).
            ("grpc.lb_policy_name", "round_robin"),
            # Each channel its own connections: in one process (tests, the launcher's
            # children do not share) a connection that failed for one channel must not
            # hold back another that dials the same address.
            ("grpc.use_local_subchannel_pool", 1),
            # A peer that restarts is found again within seconds, not after minutes of backoff.
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 3000),
        ],
    )


def is_unavailable(error: grpc.RpcError) -> bool:
    """True when an RPC failed because the other side could not be reached."""
    return isinstance(error, grpc.aio.AioRpcError) and error.code() in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    )

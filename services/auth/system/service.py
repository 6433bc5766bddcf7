"""``iot.system.v1.SystemService``: the suite's status, served by the auth process.

Auth hosts it because auth is the service every other depends on and it can
mint the short-lived service token that the other processes' diagnostics
require. Each other service is asked for its gRPC health and its own
dependency checks; unreachable ones are down.

Each service is reported by what it serves: its diagnostics list its APIs,
and one that answers but serves no API of its own (only health, reflection
and diagnostics) is ``no_api`` rather than healthy. Such a service takes
nothing away from the suite, so it does not lower the overall status; once
it serves an API it is judged like the others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

import iotkit
from iot.system.v1 import system_pb2, system_pb2_grpc
from iotkit.checks import DEGRADED, DOWN, HEALTHY
from iotkit.convert import timestamp
from iotkit.diagnostics import DiagnosticsServicer
from iotkit.sqltypes import utcnow

CALL_DEADLINE = 2.0
_RANK = {HEALTHY: 0, DEGRADED: 1, DOWN: 2}

NO_API = "no_api"
"""The state of a service that is up but serves no API of its own."""
NO_API_MESSAGE = "Serves no API of its own (only health and diagnostics)"
UNREACHABLE_MESSAGE = "Not reachable or not serving"
NO_DIAGNOSTICS_MESSAGE = "Serving, but its diagnostics could not be read"


def worst(states: Sequence[str]) -> str:
    """The worst of several states; healthy when there are none."""
    return max(states, key=_RANK.__getitem__, default=HEALTHY)


def combined(states: Sequence[str]) -> str:
    """Healthy if all are, down if all are, degraded otherwise."""
    if not states or all(s == HEALTHY for s in states):
        return HEALTHY
    if all(s == DOWN for s in states):
        return DOWN
    return DEGRADED


def service_state(service: str, process: system_pb2.ProcessStatus) -> system_pb2.ServiceState:
    """A service that answered its diagnostics: its dependencies' worst state, or no_api
    when they are fine and it serves nothing of its own."""
    failing = [d for d in process.dependencies if d.status != HEALTHY]
    state = worst([d.status for d in failing])
    message = ", ".join(f"{d.name} {d.status}" for d in failing)
    if not failing and not process.apis:
        state, message = NO_API, NO_API_MESSAGE
    return system_pb2.ServiceState(
        service=service, status=state, apis=process.apis, message=message
    )


class SystemStatusService:
    """Aggregates every process's health and diagnostics into one status."""

    def __init__(
        self,
        *,
        local: DiagnosticsServicer,
        channels: Mapping[str, aio.Channel],
        service_token: Callable[[], str],
        active_users: Callable[[], Awaitable[int]],
    ) -> None:
        self._local = local
        self._channels = dict(channels)
        self._service_token = service_token
        self._active_users = active_users
        self._started = time.monotonic()

    async def _remote(
        self, service: str, channel: aio.Channel
    ) -> tuple[system_pb2.ServiceState, system_pb2.ProcessStatus | None]:
        """A remote service's state and, when it answers, its process status."""
        down = system_pb2.ServiceState(service=service, status=DOWN, message=UNREACHABLE_MESSAGE)
        try:
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=CALL_DEADLINE
            )
        except grpc.RpcError:
            return down, None
        if health.status != health_pb2.HealthCheckResponse.SERVING:
            return down, None
        try:
            process = await system_pb2_grpc.DiagnosticsServiceStub(channel).GetProcessStatus(
                system_pb2.GetProcessStatusRequest(),
                timeout=CALL_DEADLINE,
                metadata=[("authorization", f"Bearer {self._service_token()}")],
            )
        except grpc.RpcError:
            # Serving but not answering diagnostics: e.g. it cannot verify tokens yet.
            state = system_pb2.ServiceState(
                service=service, status=DEGRADED, message=NO_DIAGNOSTICS_MESSAGE
            )
            return state, None
        return service_state(service, process), process

    async def status(self) -> system_pb2.SystemStatus:
        """Check everything now and answer the suite's status."""
        names = list(self._channels)
        remote, local, active_users = await asyncio.gather(
            asyncio.gather(*(self._remote(name, self._channels[name]) for name in names)),
            self._local.status(),
            self._active_users(),
        )
        service_states = [service_state("auth", local)]
        processes = [local]
        for state, process in remote:
            service_states.append(state)
            if process is not None:
                processes.append(process)
        states = {state.service: state.status for state in service_states}
        dependencies = [d for p in processes for d in p.dependencies]

        def kind(name: str) -> list[str]:
            return [d.status for d in dependencies if d.name == name]

        database = combined(kind("database"))
        storage = worst(kind("storage")) if kind("storage") else DOWN
        analytics_engine = states.get("analytics", DOWN)
        components = system_pb2.ComponentStates(
            database=database,
            storage=storage,
            email=worst(kind("email")) if kind("email") else DOWN,
            cache=worst(kind("cache")),
            analytics_engine=analytics_engine,
            **{name: state for name, state in states.items()},
        )
        total = sum(p.metrics.total_requests for p in processes)
        errors = sum(p.metrics.error_requests for p in processes)
        auth_db_down = any(d.status == DOWN for d in local.dependencies if d.name == "database")
        # A service with no API of its own is up and takes nothing away from the suite.
        serving = [state for state in states.values() if state != NO_API]
        every_state = [*serving, database, storage, components.email, components.cache]
        overall = (
            DOWN
            if auth_db_down
            else HEALTHY
            if all(s == HEALTHY for s in every_state)
            else DEGRADED
        )
        now = timestamp(utcnow())
        return system_pb2.SystemStatus(
            status=overall,
            timestamp=now,
            version=iotkit.__version__,
            uptime=round(time.monotonic() - self._started, 3),
            services=components,
            metrics=system_pb2.SystemMetrics(
                active_users=active_users,
                total_requests=total,
                error_rate=round(errors / total, 6) if total else 0.0,
            ),
            database=database != DOWN,
            storage=storage != DOWN,
            analytics_engine=analytics_engine != DOWN,
            last_updated=now,
            dependencies=dependencies
            + [
                system_pb2.DependencyStatus(name=name, service=name, status=state, detail="grpc")
                for name, state in states.items()
            ],
            service_states=service_states,
        )


class SystemServicer(system_pb2_grpc.SystemServiceServicer):
    """gRPC entry for :class:`SystemStatusService`."""

    def __init__(self, service: SystemStatusService) -> None:
        self._service = service

    async def GetSystemStatus(
        self, request: system_pb2.GetSystemStatusRequest, context: aio.ServicerContext[Any, Any]
    ) -> system_pb2.SystemStatus:
        """The suite's status now."""
        return await self._service.status()

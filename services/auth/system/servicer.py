"""gRPC <-> domain translation for ``iot.system.v1.SystemService``."""

from __future__ import annotations

from typing import Any

from grpc import aio

import iotkit
from iot.system.v1 import system_pb2, system_pb2_grpc
from iotkit.checks import DOWN
from iotkit.convert import timestamp
from services.auth.system.service import Dependency, SystemReport, SystemStatusService


def dependency_message(dependency: Dependency) -> system_pb2.DependencyStatus:
    """One dependency as the API shows it."""
    return system_pb2.DependencyStatus(
        name=dependency.name,
        service=dependency.service,
        status=dependency.status,
        detail=dependency.detail,
        latency_ms=dependency.latency_ms,
        optional=dependency.optional,
    )


def status_message(report: SystemReport) -> system_pb2.SystemStatus:
    """The suite's status as the API shows it (seed 001 and seed 000 fields)."""
    components = report.components
    at = timestamp(report.at)
    return system_pb2.SystemStatus(
        status=report.status,
        timestamp=at,
        version=iotkit.__version__,
        uptime=report.uptime_seconds,
        services=system_pb2.ComponentStates(**components),
        metrics=system_pb2.SystemMetrics(
            active_users=report.active_users,
            total_requests=report.total_requests,
            error_rate=report.error_rate,
        ),
        database=components["database"] != DOWN,
        storage=components["storage"] != DOWN,
        analytics_engine=components["analytics_engine"] != DOWN,
        last_updated=at,
        dependencies=[dependency_message(d) for d in report.dependencies],
        service_states=[
            system_pb2.ServiceState(
                service=state.service, status=state.status, apis=state.apis, message=state.message
            )
            for state in report.service_states
        ],
    )


class SystemServicer(system_pb2_grpc.SystemServiceServicer):
    """gRPC entry for :class:`SystemStatusService`."""

    def __init__(self, service: SystemStatusService) -> None:
        self._service = service

    async def GetSystemStatus(
        self, request: system_pb2.GetSystemStatusRequest, context: aio.ServicerContext[Any, Any]
    ) -> system_pb2.SystemStatus:
        """The suite's status now."""
        return status_message(await self._service.status())

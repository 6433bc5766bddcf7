"""Probing the suite's processes for the status: gRPC health, then their diagnostics.

The calls to other processes live here, so that the status logic in
``service.py`` works on domain values only.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from iot.system.v1 import system_pb2, system_pb2_grpc
from iotkit.context import bearer_metadata
from iotkit.diagnostics import DiagnosticsServicer
from services.auth.system.service import (
    Dependency,
    Probe,
    ProcessReport,
    Undiagnosable,
    Unreachable,
)

CALL_DEADLINE = 2.0
"""Seconds one probe call may take; a slower service counts as unreachable."""


def report_of(process: system_pb2.ProcessStatus) -> ProcessReport:
    """A process's diagnostics answer as a domain value."""
    return ProcessReport(
        service=process.service,
        version=process.version,
        uptime_seconds=process.uptime_seconds,
        dependencies=tuple(
            Dependency(
                name=d.name,
                service=d.service,
                status=d.status,
                detail=d.detail,
                latency_ms=d.latency_ms,
                optional=d.optional,
            )
            for d in process.dependencies
        ),
        total_requests=process.metrics.total_requests,
        error_requests=process.metrics.error_requests,
        apis=tuple(process.apis),
    )


def local_probe(diagnostics: DiagnosticsServicer) -> Probe:
    """This process's own diagnostics, without a call."""

    async def probe() -> ProcessReport:
        return report_of(await diagnostics.status())

    return probe


def remote_probe(channel: aio.Channel, service_token: Callable[[], str]) -> Probe:
    """Another process: its health over ``channel``, then its diagnostics with a service token."""

    async def probe() -> ProcessReport:
        try:
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=CALL_DEADLINE
            )
        except grpc.RpcError as exc:
            raise Unreachable from exc
        if health.status != health_pb2.HealthCheckResponse.SERVING:
            raise Unreachable
        try:
            process = await system_pb2_grpc.DiagnosticsServiceStub(channel).GetProcessStatus(
                system_pb2.GetProcessStatusRequest(),
                timeout=CALL_DEADLINE,
                metadata=bearer_metadata(service_token()),
            )
        except grpc.RpcError as exc:
            raise Undiagnosable from exc
        return report_of(process)

    return probe

"""The DiagnosticsService every process serves: its checks, its counters and its APIs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from grpc import aio

import iotkit
from iot.system.v1 import system_pb2, system_pb2_grpc
from iotkit.checks import DependencyCheck
from iotkit.interceptors import RequestCounters


class DiagnosticsServicer(system_pb2_grpc.DiagnosticsServiceServicer):
    """Answers this process's dependency checks and request counters."""

    def __init__(
        self, *, service: str, checks: Sequence[DependencyCheck], counters: RequestCounters
    ) -> None:
        self._service = service
        self._checks = list(checks)
        self._counters = counters
        self._started = time.monotonic()
        self._apis: tuple[str, ...] = ()

    def serves(self, apis: Sequence[str]) -> None:
        """Record the gRPC services the process serves to clients (``build_server`` calls
        it once the servicers are registered, which is after this servicer is made)."""
        self._apis = tuple(apis)

    async def status(self) -> system_pb2.ProcessStatus:
        """Run every check concurrently and answer the process status."""
        results = await asyncio.gather(*(check() for check in self._checks))
        return system_pb2.ProcessStatus(
            service=self._service,
            version=iotkit.__version__,
            uptime_seconds=round(time.monotonic() - self._started, 3),
            dependencies=results,
            metrics=system_pb2.RequestMetrics(
                total_requests=self._counters.total, error_requests=self._counters.errors
            ),
            apis=self._apis,
        )

    async def GetProcessStatus(
        self, request: system_pb2.GetProcessStatusRequest, context: aio.ServicerContext[Any, Any]
    ) -> system_pb2.ProcessStatus:
        """gRPC entry for :meth:`status`."""
        return await self.status()

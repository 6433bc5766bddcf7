"""Assembles the analytics process: detectors, anomaly review, correlations, the live hub."""

from __future__ import annotations

from pathlib import Path

from grpc import aio

from iot.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from iotkit.config import Settings
from iotkit.migrations import History
from iotkit.process import Parts, build_service
from iotkit.server import Registrar, ServiceProcess, channel
from services.analytics.analytics.analysis import AnalysisService
from services.analytics.analytics.hub import AnomalyHub
from services.analytics.analytics.service import (
    AnomalyService,
    CorrelationService,
    DetectorService,
)
from services.analytics.analytics.servicer import AnalyticsServicer
from services.analytics.analytics.store import AnalyticsStore, Base
from services.analytics.metrics import AnalysisMetrics
from services.analytics.telemetry_client import TelemetryReader

MIGRATIONS = History(
    service="analytics", directory=Path(__file__).with_name("migrations"), metadata=Base.metadata
)
"""The analytics service's schema history, applied at start and by ``iot migrate``."""


def _registrar(parts: Parts) -> Registrar:
    store = AnalyticsStore(parts.database.sessions, dialect=parts.database.kind)
    hub = AnomalyHub()
    analysis = AnalysisService(
        store=store, hub=hub, on_analyzed=AnalysisMetrics(parts.metrics).analyzed
    )
    telemetry_channel = channel(parts.settings.address("telemetry"))
    parts.closers.append(telemetry_channel.close)
    servicer = AnalyticsServicer(
        analysis=analysis,
        anomalies=AnomalyService(store=store, analysis=analysis, hub=hub),
        correlations=CorrelationService(store=store, reader=TelemetryReader(telemetry_channel)),
        detectors=DetectorService(analysis=analysis, store=store),
    )

    def register(server: aio.Server) -> list[str]:
        analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server(servicer, server)
        return [analytics_pb2.DESCRIPTOR.services_by_name["AnalyticsService"].full_name]

    return register


async def build(settings: Settings, *, address: str, schema: str | None = None) -> ServiceProcess:
    """Build the analytics server bound to ``address``."""
    return await build_service(
        settings,
        history=MIGRATIONS,
        address=address,
        schema=schema,
        register=_registrar,
    )

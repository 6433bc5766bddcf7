"""Assembles the analytics process: detectors, anomaly review, correlations, the live hub,
alert rules and their deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from grpc import aio

from iot.analytics.v1 import alerts_pb2, alerts_pb2_grpc, analytics_pb2, analytics_pb2_grpc
from iotkit.config import Settings
from iotkit.hub import Hub
from iotkit.mail import transport_for
from iotkit.migrations import History
from iotkit.notices import NoticeChannel, NoticeListener
from iotkit.outbox import Backoff
from iotkit.process import Parts, build_service
from iotkit.sealing import SecretBox
from iotkit.server import Registrar, ServiceProcess, channel
from services.analytics.alerts.delivery import DeliveryWorker
from services.analytics.alerts.engine import AlertEngine
from services.analytics.alerts.profiles import ProfileZones
from services.analytics.alerts.service import AlertRuleService
from services.analytics.alerts.servicer import AlertServicer
from services.analytics.alerts.store import AlertStore
from services.analytics.alerts.values import AlertMessage
from services.analytics.analytics.analysis import AnalysisService, ChunkIn
from services.analytics.analytics.hub import AnomalyHub
from services.analytics.analytics.service import (
    AnomalyService,
    CorrelationService,
    DetectorService,
)
from services.analytics.analytics.servicer import AnalyticsServicer
from services.analytics.analytics.store import AnalyticsStore, Base
from services.analytics.metrics import AnalysisMetrics
from services.analytics.settings import AnalyticsSettings
from services.analytics.telemetry_client import TelemetryReader

MIGRATIONS = History(
    service="analytics", directory=Path(__file__).with_name("migrations"), metadata=Base.metadata
)
"""The analytics service's schema history, applied at start and by ``iot migrate``."""


def _alerts(
    parts: Parts, hub: AnomalyHub, analytics: AnalyticsStore, telemetry: TelemetryReader
) -> tuple[AlertEngine, AlertServicer]:
    """The alert rules' engine (started here, stopped with the process) and servicer."""
    settings = (
        parts.settings
        if isinstance(parts.settings, AnalyticsSettings)
        else AnalyticsSettings(**parts.settings.model_dump())
    )
    store = AlertStore(parts.database.sessions, dialect=parts.database.kind)
    # Webhook secrets must be recovered to sign: sealed with a key of their own, derived
    # from the service secret every analytics replica shares.
    box = SecretBox(settings.service_secret, purpose="analytics/webhook-secret")
    worker = DeliveryWorker(
        store=store,
        box=box,
        transport=transport_for(settings.smtp_url),
        mail_from=settings.mail_from,
        allow_private=settings.alerts_allow_private_webhooks,
        backoff=Backoff(
            base=settings.alerts_retry_base_seconds, attempts=settings.alerts_max_attempts
        ),
        poll_interval=settings.alerts_check_seconds,
    )
    alert_hub: Hub[AlertMessage] = Hub()
    # The live feed hears this replica's messages in process and, through PostgreSQL
    # notices, the other replicas' (each rule's message is sent by one replica).
    if parts.database.schema is not None and settings.database_url:
        store.notices = NoticeChannel.of(parts.database.schema, "alerts")

        async def sent_elsewhere(message_ids: Sequence[str] | None) -> None:
            if message_ids:  # None: some may have been missed; the feed may lose some
                alert_hub.publish(await store.live_messages(message_ids=message_ids))

        listener = NoticeListener(
            database_url=settings.database_url, channel=store.notices, on_ids=sent_elsewhere
        )
        listener.start()
        parts.closers.append(listener.stop)
    engine = AlertEngine(
        store=store,
        worker=worker,
        hub=alert_hub,
        anomalies=hub,
        retired=lambda devices: analytics.retired_among(device_ids=devices),
        check_interval=settings.alerts_check_seconds,
    )
    rules = AlertRuleService(
        store=store,
        box=box,
        allow_private=settings.alerts_allow_private_webhooks,
        max_rules=settings.alerts_max_rules,
        on_change=engine.rules_changed,
        profile_zone=ProfileZones(parts.auth_channel).zone_of,
        hub=alert_hub,
        readable=telemetry,
    )
    worker.start()
    engine.start()
    parts.closers.extend([worker.stop, engine.stop])  # closed last first: the engine first
    return engine, AlertServicer(rules=rules)


def _registrar(parts: Parts) -> Registrar:
    store = AnalyticsStore(parts.database.sessions, dialect=parts.database.kind)
    hub = AnomalyHub()
    telemetry_channel = channel(parts.settings.address("telemetry"))
    parts.closers.append(telemetry_channel.close)
    telemetry = TelemetryReader(telemetry_channel)
    engine, alerts = _alerts(parts, hub, store, telemetry)
    metrics = AnalysisMetrics(parts.metrics)

    def analyzed(chunks: Sequence[ChunkIn], at: datetime) -> None:
        metrics.analyzed(chunks, at)
        engine.readings_analysed(chunks, at)

    analysis = AnalysisService(store=store, hub=hub, on_analyzed=analyzed)
    # Live watchers hear this replica's anomalies and, through PostgreSQL notices, the
    # other replicas'; the alert engine only this one's (each anomaly is found once).
    watched = AnomalyHub()
    hub.forward_to(watched)
    if parts.database.schema is not None and parts.settings.database_url:
        store.notices = NoticeChannel.of(parts.database.schema, "anomalies")

        async def found_elsewhere(anomaly_ids: Sequence[str] | None) -> None:
            if anomaly_ids:  # None: some may have been missed; live lists may lose some
                watched.publish(await store.anomalies_by_id(anomaly_ids=anomaly_ids))

        listener = NoticeListener(
            database_url=parts.settings.database_url,
            channel=store.notices,
            on_ids=found_elsewhere,
        )
        listener.start()
        parts.closers.append(listener.stop)
    servicer = AnalyticsServicer(
        analysis=analysis,
        anomalies=AnomalyService(store=store, analysis=analysis, hub=watched),
        correlations=CorrelationService(store=store, reader=telemetry),
        detectors=DetectorService(analysis=analysis, store=store),
    )

    def register(server: aio.Server) -> list[str]:
        analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server(servicer, server)
        alerts_pb2_grpc.add_AlertServiceServicer_to_server(alerts, server)
        return [
            analytics_pb2.DESCRIPTOR.services_by_name["AnalyticsService"].full_name,
            alerts_pb2.DESCRIPTOR.services_by_name["AlertService"].full_name,
        ]

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

"""Assembles the telemetry process: store, group writer, ingest, queries and background jobs."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from pathlib import Path

from grpc import aio

from iot.telemetry.v1 import imports_pb2, imports_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc
from iotkit.checks import storage_check
from iotkit.device_access import DeviceAccessClient
from iotkit.leases import lease
from iotkit.migrations import History
from iotkit.mqtt import parse_url, telemetry_password
from iotkit.notices import NoticeChannel, NoticeListener
from iotkit.process import Parts, build_service
from iotkit.server import Registrar, ServiceProcess, channel
from services.telemetry.analytics_client import AnalyticsScores
from services.telemetry.forwarder import LEASE, AnalyticsForwarder
from services.telemetry.imports.access import DeviceWriteCheck
from services.telemetry.imports.processor import FileImporter
from services.telemetry.imports.service import ImportLimits, ImportService
from services.telemetry.imports.servicer import ImportServicer
from services.telemetry.imports.store import ImportStore
from services.telemetry.jobs import (
    ActivityReporter,
    DecommissionFollower,
    Periodic,
    enforce_retention,
)
from services.telemetry.metrics import TelemetryMetrics
from services.telemetry.mqtt.consumer import MqttIngest, MqttLimits, off_check
from services.telemetry.objects import LocalObjectStore
from services.telemetry.settings import TelemetrySettings
from services.telemetry.telemetry.ingest import IngestService
from services.telemetry.telemetry.live import ReadingHub
from services.telemetry.telemetry.service import StreamService
from services.telemetry.telemetry.servicer import TelemetryServicer
from services.telemetry.telemetry.store import Base, TelemetryStore
from services.telemetry.telemetry.writer import GroupWriter, Prepared

MIGRATIONS = History(
    service="telemetry", directory=Path(__file__).with_name("migrations"), metadata=Base.metadata
)
"""The telemetry service's schema history, applied at start and by ``iot migrate``."""

ACTIVITY_PERIOD = 2.0
EVENTS_PERIOD = 5.0
RETENTION_PERIOD = 3600.0
# Months of the chunk table made ahead (PostgreSQL); writes make a missing one themselves.
PARTITIONS_PERIOD = 3600.0
# File import: how often ACTIVE batches are checked for expiry (the limits are settings).
BATCH_EXPIRY_PERIOD = 60.0


def _registrar(
    parts: Parts,
    *,
    limits: ImportLimits,
    max_streams_per_device: int,
    mqtt: MqttIngest | None,
) -> Registrar:
    store = TelemetryStore(parts.database.sessions)
    devices_channel = channel(parts.settings.address("devices"))
    access = DeviceAccessClient(devices_channel)
    analytics_channel = channel(parts.settings.address("analytics"))
    # The lambdas read the forwarder and the writer built below, at each scrape.
    measured = TelemetryMetrics(
        parts.metrics,
        newest_position=store.newest_position,
        acknowledged=lambda: forwarder.acknowledged,
        queued=lambda: writer.queued,
    )
    # Its own stream to each analytics replica, so that it picks the replica per stream.
    forwarder = AnalyticsForwarder(
        source=store,
        channel=analytics_channel,
        tokens=parts.service_tokens,
        replicas=parts.settings.replicas("analytics"),
        connect=channel,
        lease=lease(parts.database, LEASE),
        on_forwarded=measured.forwarded,
    )
    live = ReadingHub()
    # Replicas share a PostgreSQL schema: each tells the others which streams it wrote, and
    # the watchers of those streams here catch up from the store.
    listener = None
    if parts.database.schema is not None and parts.settings.database_url:
        store.notices = NoticeChannel.of(parts.database.schema, "commits")
        listener = NoticeListener(
            database_url=parts.settings.database_url, channel=store.notices, on_ids=live.nudge
        )

    def committed(stored: list[Prepared]) -> None:
        forwarder.notify()
        live.publish(stored)
        measured.stored(stored)

    # Only chunks analytics has acknowledged may be merged: a merged chunk keeps the highest
    # id it replaces, so the forwarder never sends its readings a second time.
    writer = GroupWriter(store, merge_upto=lambda: forwarder.acknowledged, on_commit=committed)
    activity = ActivityReporter(channel=devices_channel, tokens=parts.service_tokens)
    ingest = IngestService(
        store=store,
        writer=writer,
        access=access,
        activity=activity.add,
        max_streams_per_device=max_streams_per_device,
    )
    streams = StreamService(
        store=store,
        ingest=ingest,
        access=access,
        analytics=forwarder,
        scores=AnalyticsScores(analytics_channel),
        live=live,
    )
    follower = DecommissionFollower(
        channel=devices_channel, tokens=parts.service_tokens, store=store, purger=streams
    )
    import_store = ImportStore(parts.database.sessions)
    objects = LocalObjectStore(parts.settings.data_dir / "objects")
    device_check = DeviceWriteCheck(access)
    importer = FileImporter(
        store=import_store,
        objects=objects,
        ingest=ingest,
        devices=device_check,
    )
    imports = ImportService(
        store=import_store,
        objects=objects,
        files=importer,
        devices=device_check,
        limits=limits,
    )
    jobs = [
        Periodic("activity", activity.flush, ACTIVITY_PERIOD),
        Periodic("decommissions", follower.poll, EVENTS_PERIOD),
        Periodic("retention", lambda: enforce_retention(store), RETENTION_PERIOD),
        # DDL while the process stops would only hold its shutdown up: the next start does it.
        Periodic("partitions", store.partitions.make_ahead, PARTITIONS_PERIOD, run_at_stop=False),
        Periodic("batch-expiry", imports.expire_batches, BATCH_EXPIRY_PERIOD),
    ]
    writer.start()
    if mqtt is not None:
        mqtt.start(ingest=ingest, tokens=parts.service_tokens)
    for job in jobs:
        job.start()
    importer.start()
    # Closed last-first: the file importer, the jobs, then the writer drains, then the channel.
    forwarder.start()
    if listener is not None:
        listener.start()
        parts.closers.append(listener.stop)
    parts.closers.extend(
        [
            devices_channel.close,
            analytics_channel.close,
            writer.stop,
            forwarder.stop,
            *(job.stop for job in jobs),
            importer.stop,
        ]
    )
    if mqtt is not None:
        # Closed first, while the writer still commits: what is in flight is stored and
        # acknowledged, the rest stays with the broker for the next consumer.
        parts.closers.append(mqtt.stop)

    def register(server: aio.Server) -> list[str]:
        servicer = TelemetryServicer(ingest=ingest, streams=streams)
        telemetry_pb2_grpc.add_TelemetryServiceServicer_to_server(servicer, server)
        imports_pb2_grpc.add_ImportServiceServicer_to_server(ImportServicer(imports), server)
        return [
            telemetry_pb2.DESCRIPTOR.services_by_name["TelemetryService"].full_name,
            imports_pb2.DESCRIPTOR.services_by_name["ImportService"].full_name,
        ]

    return register


async def build(
    settings: TelemetrySettings, *, address: str, schema: str | None = None
) -> ServiceProcess:
    """Build the telemetry server bound to ``address``."""
    limits = ImportLimits(
        max_active_batches=settings.max_active_batches,
        batch_max_age=timedelta(hours=settings.batch_max_age_hours),
    )
    mqtt = _mqtt(settings, address)
    return await build_service(
        settings,
        history=MIGRATIONS,
        address=address,
        schema=schema,
        register=partial(
            _registrar,
            limits=limits,
            max_streams_per_device=settings.max_streams_per_device,
            mqtt=mqtt,
        ),
        extra_checks=[
            storage_check(settings.data_dir / "objects", service="telemetry"),
            mqtt.check() if mqtt is not None else off_check(),
        ],
    )


def _mqtt(settings: TelemetrySettings, address: str) -> MqttIngest | None:
    """The MQTT consumer when a broker is configured; None leaves MQTT ingest off."""
    if not settings.mqtt_url:
        return None
    return MqttIngest(
        broker=parse_url(settings.mqtt_url),
        password=telemetry_password(settings.service_secret),
        limits=MqttLimits(
            device_rate=settings.mqtt_device_rate,
            max_message_bytes=settings.mqtt_max_message_bytes,
        ),
        # One session per replica, named by where it listens, so that a restart takes it back.
        client_id="iot-telemetry-" + address.replace(":", "-"),
        redis_url=settings.redis_url,
    )

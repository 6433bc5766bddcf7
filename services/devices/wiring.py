"""Assembles the devices process: its database, the registry service, its servicer."""

from __future__ import annotations

from pathlib import Path

from grpc import aio

from iot.devices.v1 import devices_pb2, devices_pb2_grpc
from iotkit.config import Settings
from iotkit.migrations import History
from iotkit.mqtt import parse_url, telemetry_password
from iotkit.process import Parts, build_service
from iotkit.sealing import SecretBox
from iotkit.server import Registrar, ServiceProcess
from services.devices.auth_client import AuthTokenMinter
from services.devices.broker import DynsecBroker
from services.devices.broker_sync import BrokerSync, seal_box
from services.devices.devices.service import DeviceService
from services.devices.devices.servicer import DeviceServicer
from services.devices.devices.store import Base, DeviceStore

MIGRATIONS = History(
    service="devices", directory=Path(__file__).with_name("migrations"), metadata=Base.metadata
)
"""The devices service's schema history, applied at start and by ``iot migrate``."""


def _broker(parts: Parts, store: DeviceStore, box: SecretBox) -> DynsecBroker | None:
    """The MQTT broker's provisioning, connecting in the background and reconciled with the
    registry at each connection; None without a broker."""
    if not parts.settings.mqtt_url:
        return None
    broker = DynsecBroker(
        broker=parse_url(parts.settings.mqtt_url),
        telemetry_password=telemetry_password(parts.settings.service_secret),
    )
    broker.on_ready = BrokerSync(store=store, broker=broker, box=box).reconcile
    broker.start()
    parts.closers.append(broker.close)
    return broker


def _registrar(parts: Parts) -> Registrar:
    store = DeviceStore(parts.database.sessions, parts.database.reads)
    # Tokens are kept sealed whether or not a broker is configured: one configured later
    # is given them.
    box = seal_box(parts.settings.service_secret)
    service = DeviceService(
        store=store,
        mint_token=AuthTokenMinter(channel=parts.auth_channel, service_tokens=parts.service_tokens),
        broker=_broker(parts, store, box),
        seal=box.seal,
    )

    def register(server: aio.Server) -> list[str]:
        devices_pb2_grpc.add_DeviceServiceServicer_to_server(DeviceServicer(service), server)
        return [devices_pb2.DESCRIPTOR.services_by_name["DeviceService"].full_name]

    return register


async def build(settings: Settings, *, address: str, schema: str | None = None) -> ServiceProcess:
    """Build the devices server bound to ``address``."""
    return await build_service(
        settings,
        history=MIGRATIONS,
        address=address,
        schema=schema,
        register=_registrar,
    )

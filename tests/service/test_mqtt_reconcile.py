"""The MQTT broker reconciled with the registry, on a real Mosquitto this test starts and
restarts: a credential issued before the broker was configured is put on it when devices
starts, a revoked one the broker still held is taken off, running the reconciliation again
changes nothing, and a broker back from an outage without its state is provisioned again
(telemetry's client and the devices' credentials), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

from iot.devices.v1 import devices_pb2
from iotkit.mqtt import TELEMETRY_USER, parse_url
from iotsuite import mosquitto
from services.devices.broker import DynsecBroker
from services.devices.broker_sync import BrokerSync, Reconciled, seal_box
from services.devices.devices.store import DeviceStore
from tests.conftest import Backend
from tests.service.test_mqtt import NOW_S, Device, Env, new_device, readings_json, start
from tests.support import free_port

WAIT = 30.0
ATTEMPTS, ACK_SECONDS = 10, 3.0


class Broker:
    """A Mosquitto of the test's own, which it can stop and start again without its state."""

    def __init__(self, template: Path, directory: Path) -> None:
        self._template = template
        self._directory = directory
        shutil.copytree(template, directory)
        self._prepared = mosquitto.prepare(directory, port=free_port(), persistent=False)
        self.url = self._prepared.url
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = mosquitto.start(self._prepared)

    def stop(self) -> None:
        if self._process is not None:
            mosquitto.stop(self._process)
            self._process = None

    def forget(self) -> None:
        """Lose every client devices provisioned (as a broker restarted on a fresh volume)."""
        name = "dynamic-security.json"
        shutil.copyfile(self._template / name, self._directory / name)


@contextmanager
def broker(template: Path, directory: Path) -> Iterator[Broker]:
    running = Broker(template, directory)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@asynccontextmanager
async def admin(url: str) -> AsyncIterator[DynsecBroker]:
    """The broker's administrator, as a tool: it provisions nothing by itself."""
    tool = DynsecBroker(broker=parse_url(url), telemetry_password=None)
    await asyncio.wait_for(tool.connect(), WAIT)
    try:
        yield tool
    finally:
        await tool.close()


async def clients_become(tool: DynsecBroker, wanted: set[str], unwanted: str) -> set[str]:
    """The broker's clients once they include ``wanted`` and not ``unwanted`` (or at the
    deadline)."""
    deadline = time.monotonic() + WAIT
    while True:
        names = await tool.client_names()
        if (wanted <= names and unwanted not in names) or time.monotonic() > deadline:
            return names
        await asyncio.sleep(0.1)


async def publishes(env: Env, device_id: str, token: str) -> int:
    """Readings stored of one reading the device publishes, sent again until telemetry
    answers (after an outage telemetry subscribes again a moment after devices has put
    its client back, and a message published before finds no subscriber)."""
    device = Device(env, device_id, token)
    await device.client.start()
    try:
        for _ in range(ATTEMPTS):
            await device.send(readings_json("t", [[NOW_S - 1, 1.0]]))
            try:
                message = await asyncio.wait_for(device.acks.get(), ACK_SECONDS)
            except TimeoutError:
                continue
            ack = json.loads(message.payload)
            return int(ack["accepted"]) + int(ack["duplicates"])
        raise AssertionError("telemetry never answered")
    finally:
        device.client.close()


async def test_the_broker_is_reconciled_at_start_and_after_an_outage(
    backend: Backend, mosquitto_template: Path, tmp_path: Path
) -> None:
    # The registry before any broker: A keeps its credential, B's is revoked.
    async for env in start(backend, ""):
        kept, kept_token = await new_device(env)
        revoked, revoked_token = await new_device(env)
        await env.devices.RevokeDeviceCredential(
            devices_pb2.RevokeDeviceCredentialRequest(device_id=revoked), metadata=env.owner
        )

    with broker(mosquitto_template, tmp_path / "mosquitto") as running:
        async with admin(running.url) as tool:
            # A revocation the broker missed: it still lets B in.
            await tool.grant(device_id=revoked, password=revoked_token)
        async for env in start(backend, running.url):
            async with admin(running.url) as tool:
                names = await clients_become(tool, {kept, TELEMETRY_USER}, revoked)
                assert {kept, TELEMETRY_USER} <= names and revoked not in names
                assert await publishes(env, kept, kept_token) == 1
                with pytest.raises(ConnectionError, match="Not authorized"):
                    await Device(env, revoked, revoked_token).client.start(timeout=3)
                database = await backend.open("devices")
                try:
                    # In pages of one device: again, nothing to change.
                    again = BrokerSync(
                        store=DeviceStore(database.sessions, database.reads),
                        broker=tool,
                        box=seal_box(env.suite.settings.service_secret),
                        batch=1,
                    )
                    assert await again.reconcile() == Reconciled()
                    # The broker drifts (A lost, B back): one pass puts it right, the next
                    # finds nothing to do.
                    await tool.revoke(device_id=kept)
                    await tool.grant(device_id=revoked, password=revoked_token)
                    assert await again.reconcile() == Reconciled(granted=1, removed=1)
                    assert await again.reconcile() == Reconciled()
                    names = await tool.client_names()
                    assert kept in names and revoked not in names
                finally:
                    await database.close()
            # The broker restarts without its state: devices reconnects and reconciles.
            running.stop()
            running.forget()
            running.start()
            async with admin(running.url) as tool:
                names = await clients_become(tool, {kept, TELEMETRY_USER}, revoked)
                assert {kept, TELEMETRY_USER} <= names and revoked not in names
            assert await publishes(env, kept, kept_token) == 1

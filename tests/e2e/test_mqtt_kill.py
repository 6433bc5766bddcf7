"""Killing telemetry (SIGKILL) while devices publish over MQTT loses no reading the broker
accepted, and doubles none.

Telemetry runs as its own process, consuming a broker of the test's own in a
persistent session; auth and devices run in the test. Devices publish half
their messages, telemetry is killed as soon as the first is acknowledged (the
rest of that half unacknowledged, in flight or queued), the other half goes
to the broker while telemetry is down, and a new telemetry process on the same
address takes the session back. Every reading the broker PUBACKed to a device
is then stored exactly once. SQLite, and PostgreSQL in a database made for the test.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import grpc
import pytest

from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc
from iotkit.config import Settings
from iotkit.mqtt import Message, MqttClient, acks_topic, parse_url, readings_topic
from tests.conftest import Backend, start_suite
from tests.e2e.processes import owner_with_devices, start_telemetry, wait_serving

pytestmark = pytest.mark.e2e
DEVICES, MESSAGES, SIZE = 3, 40, 250
"""Each device publishes MESSAGES messages of SIZE readings (within the default rate)."""


def message(n: int, start_s: float) -> bytes:
    """Message ``n`` of a device: SIZE readings 10 ms apart, after those of the messages
    before it."""
    first = start_s + n * SIZE * 0.01
    readings = [[round(first + i * 0.01, 2), 20 + i / 100] for i in range(SIZE)]
    return json.dumps({"metric_name": "temp", "sequence": n, "readings": readings}).encode()


async def test_killed_mid_flow_every_accepted_reading_is_stored_once(
    settings: Settings, mosquitto_url: str, tmp_path: Path
) -> None:
    backend = Backend("postgresql" if settings.database_url else "sqlite", settings, "")
    suite = await start_suite(backend, ("auth", "devices"), mqtt_url=mosquitto_url)
    address = suite.address("telemetry")
    log = tmp_path / "telemetry.log"
    process = start_telemetry(suite.settings, address, log)
    clients: list[MqttClient] = []
    try:
        owner, tokens = await owner_with_devices(suite, "mqtt-kill@example.com", DEVICES)
        await wait_serving(address)
        acked: asyncio.Queue[Message] = asyncio.Queue()
        broker = parse_url(mosquitto_url)
        for device_id, metadata in tokens.items():
            client = MqttClient(
                broker=broker,
                username=device_id,
                password=metadata[0][1].removeprefix("Bearer "),
                subscriptions=(acks_topic(device_id),),
                on_message=acked.put_nowait,
            )
            await client.start()
            clients.append(client)
        start_s = time.time() - 3600
        accepted = 0  # readings the broker PUBACKed

        async def publish(messages: range) -> None:
            nonlocal accepted
            for n in messages:
                for client, device_id in zip(clients, tokens, strict=True):
                    await client.publish(readings_topic(device_id), message(n, start_s))
                    accepted += SIZE

        first_half = asyncio.ensure_future(publish(range(MESSAGES // 2)))
        await asyncio.wait_for(acked.get(), 60)  # telemetry stored something: kill it now
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        await first_half
        await publish(range(MESSAGES // 2, MESSAGES))  # queued by the broker meanwhile
        assert accepted == DEVICES * MESSAGES * SIZE

        process = start_telemetry(suite.settings, address, log)
        await wait_serving(address)
        async with grpc.aio.insecure_channel(address) as channel:
            stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)
            counts: list[int] = []
            deadline = time.monotonic() + 120  # only keeps a broken build from hanging
            while time.monotonic() < deadline:
                counts = await stored(stub, owner, list(tokens))
                if sum(counts) >= accepted:
                    break
                await asyncio.sleep(0.3)
            assert counts == [MESSAGES * SIZE] * DEVICES
    finally:
        for client in clients:
            client.close()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            # Off the loop, which serves the in-process services the stopping one calls.
            await asyncio.to_thread(process.wait, 15)
        await suite.aclose()


async def stored(
    stub: telemetry_pb2_grpc.TelemetryServiceStub,
    owner: list[tuple[str, str]],
    device_ids: list[str],
) -> list[int]:
    """Readings stored of each device's "temp" stream (0 before it exists)."""
    counts = []
    for device_id in device_ids:
        streams = await stub.ListStreams(
            telemetry_pb2.ListStreamsRequest(device_id=device_id), metadata=owner
        )
        if not streams.streams:
            counts.append(0)
            continue
        data = await stub.GetStreamData(
            telemetry_pb2.GetStreamDataRequest(
                stream_id=streams.streams[0].stream_id, max_points=10
            ),
            metadata=owner,
        )
        counts.append(int(data.stats.count))
    return counts

"""MQTT ingest on a real Mosquitto: devices provisions the broker, telemetry consumes.

Each test has a broker of its own (``mosquitto_url``) and auth, devices and
telemetry in process, on SQLite and PostgreSQL. A device connects with its id
and credential, publishes JSON or protobuf, and reads its acknowledgements.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from iot.auth.v1 import auth_pb2_grpc
from iot.devices.v1 import devices_pb2, devices_pb2_grpc
from iot.system.v1 import system_pb2, system_pb2_grpc
from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc
from iotkit.mqtt import Message, MqttClient, acks_topic, parse_url, readings_topic
from tests.conftest import Backend, Suite, start_suite
from tests.support import bearer, new_user

NOW_S = int(time.time())
ACK_WAIT = 20.0


@dataclass
class Env:
    devices: devices_pb2_grpc.DeviceServiceStub
    telemetry: telemetry_pb2_grpc.TelemetryServiceStub
    owner: list[tuple[str, str]]
    suite: Suite
    url: str


async def start(backend: Backend, url: str, **changes: Any) -> AsyncIterator[Env]:
    suite = await start_suite(backend, ("auth", "devices", "telemetry"), mqtt_url=url, **changes)
    async with (
        grpc.aio.insecure_channel(suite.address("auth")) as a,
        grpc.aio.insecure_channel(suite.address("devices")) as d,
        grpc.aio.insecure_channel(suite.address("telemetry")) as t,
    ):
        owner = bearer((await new_user(auth_pb2_grpc.AuthServiceStub(a))).access_token)
        yield Env(
            devices_pb2_grpc.DeviceServiceStub(d),
            telemetry_pb2_grpc.TelemetryServiceStub(t),
            owner,
            suite,
            url,
        )
    await suite.aclose()


@pytest.fixture
async def env(backend: Backend, mosquitto_url: str) -> AsyncIterator[Env]:
    async for running in start(backend, mosquitto_url, mqtt_max_message_bytes=4096):
        yield running


class Device:
    """A device connected to the broker with its id and credential, reading its acks."""

    def __init__(self, env: Env, device_id: str, password: str) -> None:
        self.id = device_id
        self.acks: asyncio.Queue[Message] = asyncio.Queue()
        self.client = MqttClient(
            broker=parse_url(env.url),
            username=device_id,
            password=password,
            subscriptions=(acks_topic(device_id),),
            on_message=self.acks.put_nowait,
        )

    async def send(self, body: bytes, content_type: str = "application/json") -> None:
        await self.client.publish(readings_topic(self.id), body, content_type=content_type)

    async def ack(self) -> dict[str, Any]:
        message = await asyncio.wait_for(self.acks.get(), ACK_WAIT)
        if message.content_type == "application/x-protobuf":
            from google.protobuf import json_format

            return json_format.MessageToDict(
                telemetry_pb2.BatchAck.FromString(message.payload),
                preserving_proto_field_name=True,
                always_print_fields_with_no_presence=True,
            )
        document: dict[str, Any] = json.loads(message.payload)
        return document


async def new_device(env: Env) -> tuple[str, str]:
    """A registered device's id and the token of its new credential."""
    device = await env.devices.RegisterDevice(
        devices_pb2.RegisterDeviceRequest(name="mqtt", type="temperature"), metadata=env.owner
    )
    issued = await env.devices.IssueDeviceCredential(
        devices_pb2.IssueDeviceCredentialRequest(device_id=device.device_id), metadata=env.owner
    )
    return device.device_id, issued.token


async def connected(env: Env) -> Device:
    device = Device(env, *await new_device(env))
    await device.client.start()
    return device


def readings_json(metric: str, readings: list[list[Any]], sequence: int = 0) -> bytes:
    return json.dumps({"metric_name": metric, "readings": readings, "sequence": sequence}).encode()


async def stored(env: Env, stream_id: str) -> int:
    data = await env.telemetry.GetStreamData(
        telemetry_pb2.GetStreamDataRequest(stream_id=stream_id, max_points=10_000),
        metadata=env.owner,
    )
    return int(data.stats.count)


def reasons(ack: dict[str, Any]) -> list[str]:
    return [r["reason"] for r in ack.get("rejections", [])]


async def test_json_and_protobuf_stored_once_and_acknowledged(env: Env) -> None:
    device = await connected(env)
    try:
        # Seconds, milliseconds and RFC 3339, as the upload takes them; NaN is refused.
        await device.send(
            b'{"metric_name": "temp", "sequence": 7, "readings": '
            + f"[[{NOW_S - 30}, 20.5], [{(NOW_S - 20) * 1000}, 21], ".encode()
            + b'["2025-01-01T00:00:00Z", 19], [%d, NaN]]}' % (NOW_S - 10)
        )
        ack = await device.ack()
        assert ack["sequence"] == "7"  # a uint64: a string in proto JSON
        assert ack["accepted"] == 3 and ack["rejected"] == 1
        assert reasons(ack) == ["NON_FINITE_VALUE"]
        stream_id = ack["stream_ids"][0]
        assert await stored(env, stream_id) == 3

        batch = telemetry_pb2.ReadingBatch(
            sequence=8,
            streams=[
                telemetry_pb2.StreamReadings(
                    metric_name="temp",
                    timestamps=[(NOW_S - 30) * 1_000_000, (NOW_S - 5) * 1_000_000],
                    values=[20.5, 22.0],
                ),
                telemetry_pb2.StreamReadings(
                    device_id=str(uuid.uuid4()),  # another device: refused before ingest
                    metric_name="temp",
                    timestamps=[(NOW_S - 4) * 1_000_000],
                    values=[1.0],
                ),
            ],
        )
        await device.send(batch.SerializeToString(), "application/x-protobuf")
        ack = await device.ack()
        assert ack["sequence"] == "8"
        assert ack["accepted"] == 1 and ack["duplicates"] == 1
        assert ack["rejections"][0]["index"] == 1
        assert reasons(ack) == ["DEVICE_NOT_ALLOWED"]
        assert await stored(env, stream_id) == 4
    finally:
        device.client.close()


async def test_bad_payloads_refused_with_a_reason_and_the_consumer_goes_on(env: Env) -> None:
    device = await connected(env)
    try:
        refusals = [
            (b"{not json", "application/json", "MALFORMED_PAYLOAD"),
            (b'{"metric_name": "t", "readings": [[1, 2, 3]]}', "", "MALFORMED_PAYLOAD"),
            (b'{"metric_name": "t", "readings": [[1, "x"]]}', "", "MALFORMED_PAYLOAD"),
            (b'["metric_name"]', "", "MALFORMED_PAYLOAD"),
            (b"\x08\xff\xff", "application/x-protobuf", "MALFORMED_PAYLOAD"),
            (b"a,b", "text/csv", "UNSUPPORTED_CONTENT_TYPE"),
            (b" " * 5000, "application/json", "MESSAGE_TOO_LARGE"),
            (readings_json("bad metric!", [[NOW_S, 1.0]]), "", "INVALID_METRIC"),
            (readings_json("t", [[NOW_S + 3600, 1.0]]), "", "TIMESTAMP_IN_FUTURE"),
        ]
        for body, content_type, reason in refusals:
            await device.send(body, content_type)
            ack = await device.ack()
            assert reasons(ack) == [reason], (body[:40], ack)
            assert ack["accepted"] == 0
        await device.send(readings_json("t", [[NOW_S - 1, 1.0]]))
        ack = await device.ack()
        assert ack["accepted"] == 1 and not ack["rejections"]
    finally:
        device.client.close()


async def test_the_broker_keeps_a_device_to_its_own_topics(env: Env) -> None:
    device_id, password = await new_device(env)
    device = Device(env, device_id, password)
    await device.client.start()
    other, _ = await new_device(env)
    try:
        with pytest.raises(ConnectionError, match="Not authorized"):
            await device.client.publish(readings_topic(other), readings_json("t", [[NOW_S, 1]]))
        impostor = MqttClient(
            broker=parse_url(env.url),
            username=device.id,
            password="not the credential",
        )
        with pytest.raises(ConnectionError, match="Not authorized"):
            await impostor.start(timeout=3)
        nosy = MqttClient(
            broker=parse_url(env.url),
            username=device.id,
            password=password,
            subscriptions=(acks_topic(other),),
        )
        with pytest.raises(ConnectionError, match="subscription refused"):
            await nosy.start(timeout=3)
    finally:
        device.client.close()


async def test_revoking_disconnects_and_a_new_credential_replaces_the_old(env: Env) -> None:
    device_id, first = await new_device(env)
    device = Device(env, device_id, first)
    await device.client.start()
    try:
        await env.devices.RevokeDeviceCredential(
            devices_pb2.RevokeDeviceCredentialRequest(device_id=device_id), metadata=env.owner
        )
        for _ in range(100):
            if not device.client.connected:
                break
            await asyncio.sleep(0.05)
        assert not device.client.connected
    finally:
        device.client.close()
    issued = await env.devices.IssueDeviceCredential(
        devices_pb2.IssueDeviceCredentialRequest(device_id=device_id), metadata=env.owner
    )
    again = Device(env, device_id, first)
    with pytest.raises(ConnectionError, match="Not authorized"):
        await again.client.start(timeout=3)
    renewed = Device(env, device_id, issued.token)
    await renewed.client.start()
    try:
        await renewed.send(readings_json("t", [[NOW_S - 1, 1.0]]))
        assert (await renewed.ack())["accepted"] == 1
    finally:
        renewed.client.close()


@pytest.mark.parametrize("counted", ["in_process", "in_redis"])
async def test_a_flooding_device_is_refused_past_its_rate(
    backend: Backend, mosquitto_url: str, counted: str, request: pytest.FixtureRequest
) -> None:
    # In Redis, the count every telemetry replica shares (tests/unit/test_mqtt_rate.py).
    redis_url = request.getfixturevalue("redis_url") if counted == "in_redis" else None
    async for env in start(backend, mosquitto_url, mqtt_device_rate=0.5, redis_url=redis_url):
        device = await connected(env)
        try:
            for k in range(4):
                await device.send(readings_json("t", [[NOW_S - 10 + k, float(k)]]))
            acks = [await device.ack() for _ in range(4)]
            limited = [a for a in acks if reasons(a) == ["RATE_LIMITED"]]
            accepted = sum(a["accepted"] for a in acks)
            assert limited and accepted == 4 - len(limited)
            stream_id = next(s for a in acks for s in a["stream_ids"] if s)
            assert await stored(env, stream_id) == accepted
        finally:
            device.client.close()


async def test_the_status_says_whether_mqtt_ingest_is_on(
    backend: Backend, mosquitto_url: str
) -> None:
    for url, expected in ((mosquitto_url, "ingest on"), (None, "ingest off")):
        suite = await start_suite(backend, ("auth", "devices", "telemetry"), mqtt_url=url)
        try:
            async with grpc.aio.insecure_channel(suite.address("auth")) as channel:
                stub = system_pb2_grpc.SystemServiceStub(channel)
                for _ in range(100):
                    status = await stub.GetSystemStatus(system_pb2.GetSystemStatusRequest())
                    (mqtt,) = [d for d in status.dependencies if d.name == "mqtt"]
                    if mqtt.status == "healthy":
                        break
                    await asyncio.sleep(0.1)
                assert mqtt.status == "healthy" and mqtt.detail.startswith(expected)
                assert "password" not in mqtt.detail and "@" not in mqtt.detail
        finally:
            await suite.aclose()


async def test_decommissioning_a_device_cuts_it_off_the_broker(env: Env) -> None:
    device = await connected(env)
    try:
        await env.devices.DecommissionDevice(
            devices_pb2.DecommissionDeviceRequest(device_id=device.id), metadata=env.owner
        )
        for _ in range(100):
            if not device.client.connected:
                break
            await asyncio.sleep(0.05)
        assert not device.client.connected
    finally:
        device.client.close()

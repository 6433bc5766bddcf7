"""Hostile text and bytes are refused before any servicer runs, on SQLite and PostgreSQL.

A NUL character in any string field (PostgreSQL cannot store or compare one)
is INVALID_ARGUMENT naming the field; bytes that do not parse are
INVALID_ARGUMENT naming the message. Never INTERNAL or UNKNOWN.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from iot.auth.v1 import auth_pb2, auth_pb2_grpc
from iot.devices.v1 import devices_pb2, devices_pb2_grpc
from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc
from iotkit import reasons
from iotkit.errors import FieldViolation, reason_of, violations_of
from tests.conftest import Backend, Suite, start_suite
from tests.service.proto_strategies import varint
from tests.support import PASSWORD, bearer, new_email, new_user

NUL = "must not contain NUL characters"
REGISTER_DEVICE = "/iot.devices.v1.DeviceService/RegisterDevice"
STREAM_READINGS = "/iot.telemetry.v1.TelemetryService/StreamReadings"


@dataclass
class Env:
    auth: auth_pb2_grpc.AuthServiceStub
    devices: devices_pb2_grpc.DeviceServiceStub
    telemetry: telemetry_pb2_grpc.TelemetryServiceStub
    devices_channel: grpc.aio.Channel
    telemetry_channel: grpc.aio.Channel
    suite: Suite


@pytest.fixture
async def env(backend: Backend) -> AsyncIterator[Env]:
    suite = await start_suite(backend, ("auth", "devices", "telemetry"))
    async with (
        grpc.aio.insecure_channel(suite.address("auth")) as a,
        grpc.aio.insecure_channel(suite.address("devices")) as d,
        grpc.aio.insecure_channel(suite.address("telemetry")) as t,
    ):
        yield Env(
            auth_pb2_grpc.AuthServiceStub(a),
            devices_pb2_grpc.DeviceServiceStub(d),
            telemetry_pb2_grpc.TelemetryServiceStub(t),
            d,
            t,
            suite,
        )
    await suite.aclose()


async def user(env: Env) -> list[tuple[str, str]]:
    return bearer((await new_user(env.auth)).access_token)


def refused(error: grpc.aio.AioRpcError, *fields: str) -> None:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert reason_of(error) == reasons.VALIDATION_FAILED
    assert violations_of(error) == [FieldViolation(field, NUL) for field in fields]


async def test_register_with_a_nul_display_name_is_refused_without_signing_in(env: Env) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.auth.Register(
            auth_pb2.RegisterRequest(email=new_email(), password=PASSWORD, display_name="a\x00b")
        )
    refused(caught.value, "display_name")


async def test_a_device_name_or_search_with_nul_is_refused(env: Env) -> None:
    who = await user(env)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.devices.RegisterDevice(
            devices_pb2.RegisterDeviceRequest(name="lab\x00", type="temperature"), metadata=who
        )
    refused(caught.value, "name")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.devices.ListDevices(
            devices_pb2.ListDevicesRequest(search="\x00", type="a\x00"), metadata=who
        )
    refused(caught.value, "type", "search")
    # Authentication still comes first: no token, no word on the fields.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.devices.ListDevices(devices_pb2.ListDevicesRequest(search="\x00"))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_streamed_batch_with_nul_in_a_metric_name_ends_the_call(env: Env) -> None:
    who = await user(env)
    device = await env.devices.RegisterDevice(
        devices_pb2.RegisterDeviceRequest(name="dev", type="temperature"), metadata=who
    )
    issued = await env.devices.IssueDeviceCredential(
        devices_pb2.IssueDeviceCredentialRequest(device_id=device.device_id), metadata=who
    )
    now = int(time.time() * 1_000_000)

    def batch(sequence: int, metric: str) -> telemetry_pb2.ReadingBatch:
        streams = [
            telemetry_pb2.StreamReadings(
                device_id=device.device_id,
                metric_name="temp" if index != 3 else metric,
                timestamps=[now - 1_000_000 * (index + 1)],
                values=[20.0],
            )
            for index in range(4)
        ]
        return telemetry_pb2.ReadingBatch(sequence=sequence, streams=streams)

    async def requests() -> AsyncIterator[telemetry_pb2.ReadingBatch]:
        yield batch(1, "temp")
        yield batch(2, "te\x00mp")
        yield batch(3, "temp")

    acks = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for ack in env.telemetry.StreamReadings(requests(), metadata=bearer(issued.token)):
            acks.append(ack)
    refused(caught.value, "streams[3].metric_name")
    assert [ack.sequence for ack in acks] == [1]


async def test_invalid_utf8_in_a_device_name_is_a_clear_invalid_argument(env: Env) -> None:
    who = await user(env)
    send = env.devices_channel.unary_unary(
        REGISTER_DEVICE,
        request_serializer=lambda raw: raw,
        response_deserializer=devices_pb2.Device.FromString,
    )
    name = b"\x0a\x04ab\xff\xfe"  # field 1 (name), 4 bytes, not UTF-8
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await send(name + b"\x12\x0btemperature", metadata=who)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "request is not a valid RegisterDeviceRequest"
    assert reason_of(caught.value) == reasons.VALIDATION_FAILED
    assert violations_of(caught.value) == [FieldViolation("name", "is not valid UTF-8")]


async def test_garbage_bytes_on_stream_readings_are_a_clear_invalid_argument(env: Env) -> None:
    who = await user(env)
    device = await env.devices.RegisterDevice(
        devices_pb2.RegisterDeviceRequest(name="dev", type="temperature"), metadata=who
    )
    issued = await env.devices.IssueDeviceCredential(
        devices_pb2.IssueDeviceCredentialRequest(device_id=device.device_id), metadata=who
    )
    call = env.telemetry_channel.stream_stream(
        STREAM_READINGS,
        request_serializer=lambda raw: raw,
        response_deserializer=telemetry_pb2.BatchAck.FromString,
    )

    async def requests() -> AsyncIterator[bytes]:
        yield b"\xff\xff\xff\xff\xff\xff"  # a truncated varint of an unknown field

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call(requests(), metadata=bearer(issued.token)):
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "request is not a valid ReadingBatch"


UPDATE_PROFILE = "/iot.auth.v1.ProfileService/UpdateProfile"


def nested_metadata(depth: int) -> bytes:
    """An UpdateProfileRequest whose metadata nests ``depth`` lists in one another
    (Struct -> Value -> ListValue -> Value -> ...), written as bytes: no client
    library would build it."""
    # Each level is only a prefix (tag and length) around the levels inside it, so the
    # prefixes are made inside-out and written outside-in.
    prefixes: list[bytes] = []
    size = 0
    for _ in range(depth):
        for tag in (0x0A, 0x32):  # ListValue.values[0], then Value.list_value
            prefix = bytes([tag]) + varint(size)
            prefixes.append(prefix)
            size += len(prefix)
    entry_key = b"\x0a\x01k"
    value = bytes([0x12]) + varint(size)  # the map entry's Value
    entry = bytes([0x0A]) + varint(len(entry_key) + len(value) + size)  # Struct.fields
    total = len(entry) + len(entry_key) + len(value) + size
    metadata = bytes([0x1A]) + varint(total)  # UpdateProfileRequest.metadata
    return b"".join([metadata, entry, entry_key, value, *reversed(prefixes)])


async def test_deeply_nested_protobuf_is_a_clear_invalid_argument(env: Env) -> None:
    who = await user(env)
    async with grpc.aio.insecure_channel(env.suite.address("auth")) as channel:
        send = channel.unary_unary(
            UPDATE_PROFILE, request_serializer=lambda raw: raw, response_deserializer=bytes
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await send(nested_metadata(100_000), metadata=who)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details() == "request is not a valid UpdateProfileRequest"
        assert reason_of(caught.value) == reasons.VALIDATION_FAILED
        [violation] = violations_of(caught.value)
        assert violation.field == "metadata" and "nested more deeply" in violation.message
        # Shallow nesting is a request like any other: the bytes were well formed.
        assert await send(nested_metadata(3), metadata=who)

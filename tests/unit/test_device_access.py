"""The bound on how long telemetry trusts a cached answer of the devices service.

A small real gRPC server stands in for devices and answers a TTL far longer than
the bound; the client's clock is moved by hand, so no test waits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace

import grpc
import pytest
from grpc import aio

from iot.devices.v1 import devices_pb2, devices_pb2_grpc
from iotkit import device_access
from iotkit.device_access import DeviceAccessClient

DAY = 24 * 3600
# The bound SECURITY.md promises.
BOUND = 30


class _Devices(devices_pb2_grpc.DeviceServiceServicer):
    """Allows every question, cacheable for a day; counts the questions."""

    def __init__(self) -> None:
        self.asked = 0

    async def CheckDeviceAccess(
        self, request: devices_pb2.CheckDeviceAccessRequest, context: grpc.aio.ServicerContext
    ) -> devices_pb2.DeviceAccess:
        self.asked += 1
        return devices_pb2.DeviceAccess(
            allowed=True, owner_id="owner", device_type="temperature", ttl_seconds=DAY
        )


@pytest.fixture
async def devices() -> AsyncIterator[tuple[_Devices, aio.Channel]]:
    servicer = _Devices()
    server = aio.server()
    devices_pb2_grpc.add_DeviceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield servicer, channel
    finally:
        await server.stop(0)


async def test_an_answer_is_trusted_at_most_30_seconds_whatever_ttl_devices_gives(
    devices: tuple[_Devices, aio.Channel], monkeypatch: pytest.MonkeyPatch
) -> None:
    servicer, channel = devices
    clock = [1000.0]
    # Only this module's clock: the event loop keeps the real one.
    monkeypatch.setattr(device_access, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    # Built as telemetry's wiring builds it, with the default bound.
    client = DeviceAccessClient(channel)

    async def ask() -> None:
        grant = await client.check(token="t", device_id="d", access="write")
        assert grant.allowed

    await ask()
    clock[0] += BOUND - 1
    await ask()
    assert servicer.asked == 1
    clock[0] += 1
    await ask()
    assert servicer.asked == 2

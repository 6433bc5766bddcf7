"""A benchmark's account and devices, set up through the real APIs.

The same steps as the simulator's (:mod:`tools.simulate`): log in or
register, register the devices ``sim-0001``..., issue each its credential.
"""

from __future__ import annotations

from dataclasses import dataclass

from grpc import aio

from bench.load import Device
from bench.services import RunningServices
from iot.auth.v1 import auth_pb2_grpc
from iot.devices.v1 import devices_pb2_grpc
from tools.simulate import ensure_devices, issue_credentials, log_in

EMAIL = "bench@example.com"
PASSWORD = "Bench!pass1"


@dataclass(frozen=True, slots=True)
class Fleet:
    """The account's access token and its devices with their tokens."""

    access_token: str
    devices: tuple[Device, ...]


async def make_fleet(suite: RunningServices, count: int) -> Fleet:
    """Register the account and ``count`` devices, each with its own device token."""
    async with (
        aio.insecure_channel(suite.address("auth")) as auth_channel,
        aio.insecure_channel(suite.address("devices")) as devices_channel,
    ):
        access = await log_in(auth_pb2_grpc.AuthServiceStub(auth_channel), EMAIL, PASSWORD)
        stub = devices_pb2_grpc.DeviceServiceStub(devices_channel)
        registered = await ensure_devices(stub, access, count)
        tokens = await issue_credentials(stub, access, [d.device_id for d in registered])
    return Fleet(
        access,
        tuple(
            Device(d.device_id, token, d.type, seed=index)
            for index, (d, token) in enumerate(zip(registered, tokens, strict=True))
        ),
    )

"""Services as processes of their own in end-to-end tests (so that they can be killed,
or run twice as replicas of one database; see conftest.py for the database), a user
with devices, the batches a device sends, and what analytics has analysed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from iot.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from iot.auth.v1 import auth_pb2_grpc
from iot.devices.v1 import devices_pb2, devices_pb2_grpc
from iot.telemetry.v1 import telemetry_pb2
from iotkit.config import Settings
from services.telemetry.forwarder import CURSOR
from tests.conftest import Backend, Suite
from tests.support import bearer, new_user


def start_service(
    service: str, settings: Settings, address: str, log: Path
) -> subprocess.Popen[bytes]:
    """Start ``service`` (``python -m services.<service>``) listening on ``address``, beside
    the test's other services, its stderr appended to ``log``. When ``settings`` list
    replicas of ``service`` including ``address``, it is that replica."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOT_")}
    env.update({f"IOT_{n.upper()}_ADDR": a for n, a in settings.addresses.items()})
    if address not in settings.replicas(service):
        env[f"IOT_{service.upper()}_ADDR"] = address
    env.update({"IOT_LISTEN_ADDR": address, "IOT_DATA_DIR": str(settings.data_dir)})
    env["IOT_GRACE_SECONDS"] = f"{settings.grace_seconds:g}"
    if settings.database_url:
        env["IOT_DATABASE_URL"] = settings.database_url
    if settings.mqtt_url:
        env["IOT_MQTT_URL"] = settings.mqtt_url
    return subprocess.Popen(
        [sys.executable, "-m", f"services.{service}"],
        env=env,
        stderr=log.open("ab"),
        cwd=Path(__file__).resolve().parents[2],
    )


def start_telemetry(settings: Settings, address: str, log: Path) -> subprocess.Popen[bytes]:
    """Start a telemetry process listening on ``address``, its stderr appended to ``log``."""
    return start_service("telemetry", settings, address, log)


async def wait_serving(address: str) -> None:
    """Wait until the server at ``address`` reports SERVING (at most 30 s)."""
    deadline = time.monotonic() + 30
    async with grpc.aio.insecure_channel(address) as channel:
        while time.monotonic() < deadline:
            try:
                answer = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"the process at {address} did not come up")


def batch(
    n: int, device_id: str, start_us: int, *, size: int, step_us: int
) -> telemetry_pb2.ReadingBatch:
    """Batch ``n`` of a device's "temp" stream: ``size`` readings every ``step_us`` after
    the batches before it, all ``start_us`` or later."""
    first = start_us + n * size * step_us
    return telemetry_pb2.ReadingBatch(
        sequence=n,
        streams=[
            telemetry_pb2.StreamReadings(
                device_id=device_id,
                metric_name="temp",
                timestamps=[first + i * step_us for i in range(size)],
                values=[round(20 + i / 1000, 3) for i in range(size)],
            )
        ],
    )


Metadata = list[tuple[str, str]]


async def owner_with_devices(
    suite: Suite, email: str, count: int
) -> tuple[Metadata, dict[str, Metadata]]:
    """A new user's call metadata, and ``count`` temperature devices of theirs, each id
    with the metadata of its own device credential."""
    async with (
        grpc.aio.insecure_channel(suite.address("auth")) as a,
        grpc.aio.insecure_channel(suite.address("devices")) as d,
    ):
        auth, devices = auth_pb2_grpc.AuthServiceStub(a), devices_pb2_grpc.DeviceServiceStub(d)
        owner = bearer((await new_user(auth, email)).access_token)
        tokens: dict[str, Metadata] = {}
        for k in range(count):
            device = await devices.RegisterDevice(
                devices_pb2.RegisterDeviceRequest(name=f"device {k}", type="temperature"),
                metadata=owner,
            )
            issued = await devices.IssueDeviceCredential(
                devices_pb2.IssueDeviceCredentialRequest(device_id=device.device_id),
                metadata=owner,
            )
            tokens[device.device_id] = bearer(issued.token)
    return owner, tokens


async def analysed(
    stub: analytics_pb2_grpc.AnalyticsServiceStub, stream_id: str, owner: Metadata
) -> int:
    """Readings of the stream analytics has analysed (late ones included); 0 before any."""
    try:
        detector = await stub.GetDetector(
            analytics_pb2.GetDetectorRequest(stream_id=stream_id), metadata=owner, timeout=5
        )
    except grpc.aio.AioRpcError as error:
        if error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
            return 0
        raise
    return int(detector.readings + detector.late_readings)


async def all_forwarded(backend: Backend, within: float = 120.0) -> None:
    """Wait until the telemetry replicas' shared cursor says analytics acknowledged every
    stored chunk (nothing is timed; ``within`` only keeps a broken build from hanging)."""
    last = int(str((await backend.sql("telemetry", "SELECT max(id) FROM chunks"))[0][0] or 0))
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        cursor = await backend.sql(
            "telemetry", "SELECT position FROM cursors WHERE name = ?", (CURSOR,)
        )
        if cursor and int(str(cursor[0][0])) >= last:
            return
        await asyncio.sleep(0.2)

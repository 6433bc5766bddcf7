"""Stopping telemetry mid-stream (SIGKILL, or SIGTERM and its drain) loses no acknowledged
reading, and the device's resend doubles nothing.

Telemetry runs as its own process (so it can be signalled); auth and devices
run in the test. SQLite, and PostgreSQL in a database made for the test.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from psycopg import sql

from iot.auth.v1 import auth_pb2_grpc
from iot.devices.v1 import devices_pb2, devices_pb2_grpc
from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc
from iotkit.config import Settings
from tests.conftest import Backend, Suite, _required, start_suite
from tests.support import bearer, new_user

pytestmark = pytest.mark.e2e
BATCHES, SIZE = 20, 1000


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    base = Settings(data_dir=tmp_path / "data")
    if request.param == "sqlite":
        yield base
        return
    admin_url = _required("IOT_TEST_DATABASE_URL")
    name = f"iot_restart_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield base.model_copy(update={"database_url": f"{admin_url.rpartition('/')[0]}/{name}"})
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def start_service(
    service: str, settings: Settings, address: str, log: Path
) -> subprocess.Popen[bytes]:
    """``service`` as its own process (``python -m services.<service>``) on ``address``,
    beside the test's other services, its log appended to ``log``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOT_")}
    env.update({f"IOT_{n.upper()}_ADDR": a for n, a in settings.addresses.items()})
    env.update({f"IOT_{service.upper()}_ADDR": address, "IOT_DATA_DIR": str(settings.data_dir)})
    if settings.database_url:
        env["IOT_DATABASE_URL"] = settings.database_url
    return subprocess.Popen(
        [sys.executable, "-m", f"services.{service}"],
        env=env,
        stderr=log.open("ab"),
        cwd=Path(__file__).resolve().parents[2],
    )


async def wait_serving(address: str) -> None:
    """Until the process at ``address`` answers health SERVING (30 s at most)."""
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
    raise AssertionError("telemetry did not come up")


def batch(n: int, device_id: str, start_us: int) -> telemetry_pb2.ReadingBatch:
    timestamps = [start_us + (n * SIZE + i) * 10_000 for i in range(SIZE)]
    return telemetry_pb2.ReadingBatch(
        sequence=n,
        streams=[
            telemetry_pb2.StreamReadings(
                device_id=device_id,
                metric_name="temp",
                timestamps=timestamps,
                values=[round(20 + i / 1000, 3) for i in range(SIZE)],
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


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
async def test_stopped_mid_stream_then_resume(
    stop: signal.Signals, settings: Settings, tmp_path: Path
) -> None:
    backend = Backend("postgresql" if settings.database_url else "sqlite", settings, "")
    suite = await start_suite(backend, ("auth", "devices"))
    address = suite.address("telemetry")
    log = tmp_path / "telemetry.log"
    process = start_service("telemetry", suite.settings, address, log)
    try:
        owner, tokens = await owner_with_devices(suite, "k@example.com", 1)
        ((device_id, token),) = tokens.items()
        start_us = int(time.time() * 1_000_000) - 3_600_000_000
        await wait_serving(address)

        acked: dict[int, int] = {}
        async with grpc.aio.insecure_channel(address) as channel:
            stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)

            async def first_half() -> AsyncIterator[telemetry_pb2.ReadingBatch]:
                for n in range(BATCHES):
                    if n == BATCHES // 2:
                        # Some acknowledged first, however loaded the machine; then the rest
                        # of the first half is still in flight when the process dies.
                        for _ in range(300):
                            if acked:
                                break
                            await asyncio.sleep(0.1)
                        process.send_signal(stop)  # mid-stream, with batches in flight
                        process.wait(timeout=10)  # gone for sure before the next batch goes out
                    yield batch(n, device_id, start_us)
                    await asyncio.sleep(0.01)

            # The call breaks: an error status, or, when the server ended it while the
            # iterator was still writing, gRPC's client reports a local cancellation.
            with pytest.raises((grpc.aio.AioRpcError, asyncio.CancelledError)):
                async for ack in stub.StreamReadings(first_half(), metadata=token):
                    acked[ack.sequence] = ack.accepted
        process.wait(timeout=10)
        assert acked and all(count == SIZE for count in acked.values())

        process = start_service("telemetry", suite.settings, address, log)
        await wait_serving(address)
        async with grpc.aio.insecure_channel(address) as channel:
            stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)
            stream_id = None

            async def everything_again() -> AsyncIterator[telemetry_pb2.ReadingBatch]:
                for n in range(BATCHES):  # the device resends all it has no ack for, and more
                    yield batch(n, device_id, start_us)

            duplicates = 0
            async for ack in stub.StreamReadings(everything_again(), metadata=token):
                stream_id = ack.stream_ids[0]
                duplicates += ack.duplicates
            assert duplicates >= len(acked) * SIZE  # every acknowledged reading was still there
            data = await stub.GetStreamData(
                telemetry_pb2.GetStreamDataRequest(stream_id=stream_id, max_points=10),
                metadata=owner,
            )
        assert data.stats.count == BATCHES * SIZE  # and nothing doubled
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)
        await suite.aclose()

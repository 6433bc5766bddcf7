"""Telemetry as a process of its own in end-to-end tests (so that it can be killed, or
run twice as replicas of one database; see conftest.py for the database), and the
batches a device sends it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from iot.telemetry.v1 import telemetry_pb2
from iotkit.config import Settings


def start_telemetry(settings: Settings, address: str, log: Path) -> subprocess.Popen[bytes]:
    """Start a telemetry process listening on ``address``, its stderr appended to ``log``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOT_")}
    env.update({f"IOT_{n.upper()}_ADDR": a for n, a in settings.addresses.items()})
    env.update({"IOT_TELEMETRY_ADDR": address, "IOT_DATA_DIR": str(settings.data_dir)})
    if settings.database_url:
        env["IOT_DATABASE_URL"] = settings.database_url
    return subprocess.Popen(
        [sys.executable, "-m", "services.telemetry"],
        env=env,
        stderr=log.open("ab"),
        cwd=Path(__file__).resolve().parents[2],
    )


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
    raise AssertionError("telemetry did not come up")


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

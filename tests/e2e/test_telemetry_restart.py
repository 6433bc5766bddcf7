"""Stopping telemetry mid-stream (SIGKILL, or SIGTERM and its drain) loses no acknowledged
reading, and the device's resend doubles nothing.

Telemetry runs as its own process (so it can be signalled); auth and devices
run in the test. SQLite, and PostgreSQL in a database made for the test.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc
from iotkit.config import Settings
from tests.conftest import Backend, start_suite
from tests.e2e.processes import batch as readings
from tests.e2e.processes import owner_with_devices, start_telemetry, wait_serving

pytestmark = pytest.mark.e2e
BATCHES, SIZE = 20, 1000


def batch(n: int, device_id: str, start_us: int) -> telemetry_pb2.ReadingBatch:
    return readings(n, device_id, start_us, size=SIZE, step_us=10_000)


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
async def test_stopped_mid_stream_then_resume(
    stop: signal.Signals, settings: Settings, tmp_path: Path
) -> None:
    backend = Backend("postgresql" if settings.database_url else "sqlite", settings, "")
    suite = await start_suite(backend, ("auth", "devices"))
    address = suite.address("telemetry")
    log = tmp_path / "telemetry.log"
    # A SIGTERM lets calls in flight finish for the grace period, and this device keeps
    # its stream open while the test waits for the process to go: 1 s is as real a drain
    # as the default 5 s, and quicker.
    draining = suite.settings.model_copy(update={"grace_seconds": 1.0})
    process = start_telemetry(draining, address, log)
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
                        # of the first half is still in flight when the process stops.
                        for _ in range(300):
                            if acked:
                                break
                            await asyncio.sleep(0.1)
                        process.send_signal(stop)  # mid-stream, with batches in flight
                        # Gone for sure before the next batch goes out; waited for off the
                        # loop, which serves auth and devices to the stopping process.
                        await asyncio.to_thread(process.wait, 30)
                    yield batch(n, device_id, start_us)
                    await asyncio.sleep(0.01)

            # The call breaks: an error status, or, when the server ended it while the
            # iterator was still writing, gRPC's client reports a local cancellation.
            with pytest.raises((grpc.aio.AioRpcError, asyncio.CancelledError)):
                async for ack in stub.StreamReadings(first_half(), metadata=token):
                    acked[ack.sequence] = ack.accepted
        process.wait(timeout=10)
        assert acked and all(count == SIZE for count in acked.values())

        process = start_telemetry(draining, address, log)
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
            await asyncio.to_thread(process.wait, 15)
        await suite.aclose()

"""Killing analytics mid-ingest loses nothing: sent = acknowledged = stored = analysed.

Analytics runs as its own process (so it can be SIGKILLed); auth, devices and
telemetry run in the test. Devices keep streaming while analytics is dead;
telemetry goes on storing and acknowledging, and once analytics is back it
forwards from its durable cursor, so every stored reading is analysed exactly
once. SQLite, and PostgreSQL in a database made for the test.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from iot.analytics.v1 import analytics_pb2_grpc
from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc
from iotkit.config import Settings
from tests.conftest import Backend, start_suite
from tests.e2e.processes import analysed, owner_with_devices, start_service, wait_serving
from tests.e2e.processes import batch as readings

pytestmark = pytest.mark.e2e

DEVICES, BATCHES, SIZE = 3, 12, 1000
ANALYSED_WITHIN = 90.0  # seconds for analytics to catch up after its restart


async def test_kill_analytics_mid_ingest(settings: Settings, tmp_path: Path) -> None:
    backend = Backend("postgresql" if settings.database_url else "sqlite", settings, "")
    suite = await start_suite(backend, ("auth", "devices", "telemetry"))
    address = suite.address("analytics")
    log = tmp_path / "analytics.log"
    process = start_service("analytics", suite.settings, address, log)
    try:
        owner, tokens = await owner_with_devices(suite, "fault@example.com", DEVICES)
        await wait_serving(address)
        start_us = int(time.time() * 1_000_000) - 30 * 86_400 * 1_000_000
        acked: dict[str, int] = dict.fromkeys(tokens, 0)
        stream_ids: dict[str, str] = {}
        killed = asyncio.Event()

        async with grpc.aio.insecure_channel(suite.address("telemetry")) as channel:
            telemetry = telemetry_pb2_grpc.TelemetryServiceStub(channel)

            async def send(device_id: str) -> None:
                async def batches() -> AsyncIterator[telemetry_pb2.ReadingBatch]:
                    for n in range(BATCHES):
                        if n == BATCHES // 2:
                            await killed.wait()  # the second half goes while analytics is dead
                        yield readings(n, device_id, start_us, size=SIZE, step_us=10_000)

                async for ack in telemetry.StreamReadings(batches(), metadata=tokens[device_id]):
                    acked[device_id] += ack.accepted
                    stream_ids[device_id] = ack.stream_ids[0]

            async def kill_when_analysing() -> None:
                # Once analytics has analysed something, it dies with more on the way.
                async with grpc.aio.insecure_channel(address) as a:
                    stub = analytics_pb2_grpc.AnalyticsServiceStub(a)
                    for _ in range(600):
                        # A copy: the devices add their streams meanwhile.
                        streams = list(stream_ids.values())
                        counts = [await analysed(stub, s, owner) for s in streams]
                        if sum(counts):
                            break
                        await asyncio.sleep(0.1)
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)
                killed.set()

            await asyncio.gather(*(send(d) for d in tokens), kill_when_analysing())
            sent = DEVICES * BATCHES * SIZE
            assert sum(acked.values()) == sent  # ingest went on while analytics was dead

            stored = 0
            for stream_id in stream_ids.values():
                data = await telemetry.GetStreamData(
                    telemetry_pb2.GetStreamDataRequest(stream_id=stream_id, max_points=10),
                    metadata=owner,
                )
                stored += data.stats.count
            assert stored == sent

        process = start_service("analytics", suite.settings, address, log)
        await wait_serving(address)
        async with grpc.aio.insecure_channel(address) as a:
            stub = analytics_pb2_grpc.AnalyticsServiceStub(a)
            deadline = time.monotonic() + ANALYSED_WITHIN
            while True:
                counts = {d: await analysed(stub, s, owner) for d, s in stream_ids.items()}
                if sum(counts.values()) >= sent or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
        # Exactly: nothing skipped, and nothing analysed twice after the restart.
        assert counts == dict.fromkeys(tokens, BATCHES * SIZE)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            # Off the loop, which serves the in-process services the stopping one calls.
            await asyncio.to_thread(process.wait, 15)
        await suite.aclose()

"""Ingest through a PostgreSQL restart and a Redis outage loses nothing and doubles nothing.

Devices stream while the database restarts (or Redis stops and starts) under
the suite; like real devices they resend every batch not acknowledged when a
call fails. At the end, exactly: sent = acknowledged = stored = analysed.
The servers are throwaway ones the test starts and stops (``tests/throwaway.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import grpc
import pytest

from iot.analytics.v1 import analytics_pb2_grpc
from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc
from iotkit.config import Settings
from tests.conftest import Backend, Suite, start_suite
from tests.e2e.processes import Metadata, analysed, owner_with_devices
from tests.e2e.processes import batch as readings
from tests.throwaway import throwaway_postgres, throwaway_redis

DEVICES, BATCHES = 3, 10
SIZE = 1000  # readings per batch
SETTLED_WITHIN = 90.0  # seconds for every reading to be analysed after the outage
# What a device may meet while a dependency is away; it resends and goes on.
PASSING = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


class Server(Protocol):
    """A throwaway server the test stops and starts."""

    def stop(self) -> None: ...

    def start(self) -> None: ...


@contextmanager
def backend_with_outage(
    kind: str, tmp_path: Path
) -> Iterator[tuple[Backend, dict[str, Any], Server]]:
    """The suite's backend, the settings to change, and the throwaway server to stop."""
    if kind == "postgresql":
        with throwaway_postgres() as postgres:
            settings = Settings(data_dir=tmp_path, database_url=postgres.url)
            yield Backend("postgresql", settings, "tfault"), {}, postgres
    else:
        with throwaway_redis() as redis:
            yield (
                Backend("sqlite", Settings(data_dir=tmp_path), ""),
                {"redis_url": redis.url},
                redis,
            )


async def send_until_acknowledged(
    stub: telemetry_pb2_grpc.TelemetryServiceStub,
    token: Metadata,
    device_id: str,
    start_us: int,
    acknowledged: list[int],
    down: asyncio.Event,
) -> tuple[int, str]:
    """Send BATCHES batches, resending those without an acknowledgement after a failed
    call, as a device does; answers the readings accepted as new, and the stream id."""
    pending = list(range(BATCHES))
    accepted, stream_id = 0, ""
    while pending:

        async def batches(numbers: list[int]) -> AsyncIterator[telemetry_pb2.ReadingBatch]:
            for n in numbers:
                if n >= BATCHES // 2:
                    await down.wait()  # the second half meets the outage
                yield readings(n, device_id, start_us, size=SIZE, step_us=10_000)
                await asyncio.sleep(0.05)

        try:
            async for ack in stub.StreamReadings(
                batches(list(pending)), metadata=token, timeout=60
            ):
                pending.remove(ack.sequence)
                accepted += ack.accepted
                acknowledged.append(ack.accepted + ack.duplicates)
                stream_id = ack.stream_ids[0]
        except grpc.aio.AioRpcError as error:
            assert error.code() in PASSING, error  # never INTERNAL or UNKNOWN
            await asyncio.sleep(0.3)
    return accepted, stream_id


async def outage_mid_ingest(server: Server, acknowledged: list[int], down: asyncio.Event) -> None:
    """Once some batches are acknowledged, stop the server for a moment and start it again."""
    for _ in range(600):
        if len(acknowledged) >= DEVICES:
            break
        await asyncio.sleep(0.05)
    await asyncio.to_thread(server.stop)
    down.set()
    await asyncio.sleep(2.0)
    await asyncio.to_thread(server.start)


async def settled(suite: Suite, owner: Metadata, stream_ids: list[str], expected: int) -> int:
    """Readings analysed over the streams, once analytics has caught up (or given up)."""
    async with grpc.aio.insecure_channel(suite.address("analytics")) as channel:
        stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)
        deadline = time.monotonic() + SETTLED_WITHIN
        while True:
            total = sum([await analysed(stub, s, owner) for s in stream_ids])
            if total >= expected or time.monotonic() > deadline:
                return total
            await asyncio.sleep(0.5)


@pytest.mark.parametrize("kind", ["postgresql", "redis"])
async def test_devices_that_resend_lose_nothing_through_an_outage(
    kind: str, tmp_path: Path
) -> None:
    with backend_with_outage(kind, tmp_path) as (backend, changes, server):
        suite = await start_suite(backend, **changes)
        try:
            owner, tokens = await owner_with_devices(suite, f"{kind}@example.com", DEVICES)
            start_us = int(time.time() * 1_000_000) - 30 * 86_400 * 1_000_000
            acknowledged: list[int] = []
            down = asyncio.Event()
            async with grpc.aio.insecure_channel(suite.address("telemetry")) as channel:
                stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)
                outage = asyncio.create_task(outage_mid_ingest(server, acknowledged, down))
                sent = await asyncio.gather(
                    *(
                        send_until_acknowledged(stub, token, device, start_us, acknowledged, down)
                        for device, token in tokens.items()
                    )
                )
                await outage
                expected = DEVICES * BATCHES * SIZE
                stream_ids = [stream_id for _, stream_id in sent]
                # Every batch acknowledged, and each reading accepted as new exactly once.
                assert sum(acknowledged) >= expected
                assert sum(accepted for accepted, _ in sent) == expected
                stored = 0
                for stream_id in stream_ids:
                    data = await stub.GetStreamData(
                        telemetry_pb2.GetStreamDataRequest(stream_id=stream_id, max_points=10),
                        metadata=owner,
                    )
                    stored += data.stats.count
            assert stored == expected
            assert await settled(suite, owner, stream_ids, expected) == expected
        finally:
            await suite.aclose()

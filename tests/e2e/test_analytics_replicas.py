"""Two telemetry and two analytics replicas on PostgreSQL: one analytics replica is
SIGKILLed mid-stream, and still every stored reading is analysed exactly once.

All four are processes of their own (auth and devices run in the test). Each
telemetry replica sends each stream to the analytics replica that owns it on
the ring; the killed one's streams move to the other, which resumes each from
the analysed position stored with its results. "Exactly once" is read from the
databases: per stream, the detector has taken in as many readings as
telemetry stored, none of them twice (a second analysis would count late
readings), and the score rows hold one score per stored reading.

Replicas need PostgreSQL (``iot up`` refuses them on SQLite: see
tests/test_launcher.py), so this runs on PostgreSQL only.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc
from iotkit.config import Settings
from services.telemetry.ring import owner
from tests.conftest import Backend, start_suite
from tests.e2e.processes import (
    all_forwarded,
    batch,
    owner_with_devices,
    start_service,
    wait_serving,
)
from tests.support import free_port

pytestmark = pytest.mark.e2e

DEVICES, BATCHES, SIZE = 12, 16, 250
START_US = int(time.time()) * 1_000_000 - 6 * 3600 * 1_000_000
CAUGHT_UP_WITHIN = 120.0  # seconds; only keeps a broken build from hanging


async def per_stream(backend: Backend, service: str, statement: str) -> dict[str, int]:
    """A ``stream_id, number`` query's answer as a dict."""
    return {str(s): int(str(n)) for s, n in await backend.sql(service, statement)}


async def taken_in(backend: Backend) -> dict[str, tuple[int, int]]:
    """Each stream's readings its detector took in, and of those the late ones."""
    rows = await backend.sql("analytics", "SELECT stream_id, state FROM detectors")
    taken = {}
    for stream, state in rows:
        values = state if isinstance(state, dict) else json.loads(str(state))
        taken[str(stream)] = (int(values["readings"]) + int(values["late"]), int(values["late"]))
    return taken


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_killing_an_analytics_replica_mid_stream_moves_its_streams_losing_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    backend = Backend("postgresql", settings, "iot")  # the processes' default schemas
    suite = await start_suite(backend, ("auth", "devices"))
    telemetry = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    analytics = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    listed = suite.settings.model_copy(
        update={
            "addresses": {
                **suite.settings.addresses,
                "telemetry": ",".join(telemetry),
                "analytics": ",".join(analytics),
            }
        }
    )
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for service, addresses in (("analytics", analytics), ("telemetry", telemetry)):
            for address in addresses:
                log = tmp_path / f"{service}-{address.rpartition(':')[2]}.log"
                processes[address] = start_service(service, listed, address, log)
                await wait_serving(address)
        _, tokens = await owner_with_devices(suite, "replicas@example.com", DEVICES)
        acked: dict[str, int] = dict.fromkeys(tokens, 0)
        streams: dict[str, str] = {}
        killed = asyncio.Event()
        victim: list[str] = []

        async def send(index: int, device_id: str) -> None:
            async def batches() -> AsyncIterator[telemetry_pb2.ReadingBatch]:
                for n in range(BATCHES):
                    if n == BATCHES // 2:
                        await killed.wait()  # the second half goes once a replica is dead
                    yield batch(n, device_id, START_US, size=SIZE, step_us=1_000_000)

            # Half the devices on each telemetry replica.
            async with grpc.aio.insecure_channel(telemetry[index % 2]) as channel:
                stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)
                async for ack in stub.StreamReadings(batches(), metadata=tokens[device_id]):
                    assert not ack.rejected, ack
                    acked[device_id] += ack.accepted
                    streams[device_id] = ack.stream_ids[0]

        async def kill_when_analysing() -> None:
            # The owner of the first stream dies once it has analysed some of that stream.
            deadline = time.monotonic() + CAUGHT_UP_WITHIN
            while len(streams) < DEVICES or not victim:
                assert time.monotonic() < deadline, "no stream was forwarded"
                if len(streams) == DEVICES:
                    victim.append(owner(next(iter(streams.values())), analytics))
                await asyncio.sleep(0.1)
            watched = [s for s in streams.values() if owner(s, analytics) == victim[0]]
            while True:
                taken = await taken_in(backend)
                if any(taken.get(s, (0, 0))[0] for s in watched):
                    break
                assert time.monotonic() < deadline, "the replica analysed nothing"
                await asyncio.sleep(0.1)
            processes[victim[0]].send_signal(signal.SIGKILL)
            processes[victim[0]].wait(timeout=10)
            killed.set()

        await asyncio.gather(*(send(i, d) for i, d in enumerate(tokens)), kill_when_analysing())
        sent = DEVICES * BATCHES * SIZE
        assert sum(acked.values()) == sent

        await all_forwarded(backend, CAUGHT_UP_WITHIN)

        stored = await per_stream(
            backend, "telemetry", "SELECT stream_id, sum(count) FROM chunks GROUP BY stream_id"
        )
        scored = await per_stream(
            backend, "analytics", "SELECT stream_id, sum(count) FROM scores GROUP BY stream_id"
        )
        assert sorted(stored) == sorted(streams.values())
        assert sum(stored.values()) == sent
        # Nothing skipped, nothing analysed twice: per stream, taken in = stored, none late.
        assert await taken_in(backend) == {s: (n, 0) for s, n in stored.items()}
        assert scored == stored
        # The killed replica's streams did move: its survivor analysed them to the end.
        assert processes[victim[0]].returncode == -signal.SIGKILL
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                # Off the loop, which serves the in-process services the stopping one calls.
                await asyncio.to_thread(process.wait, 30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        await suite.aclose()

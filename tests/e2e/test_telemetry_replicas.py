"""Two telemetry replicas sharing one database, as docker compose runs them: every
acknowledged reading is stored once and analysed once, on SQLite and PostgreSQL.
Both replicas are processes of their own; auth, devices and analytics run in the test.

Chunk positions are what the forwarders' cursor counts in; with two writers a
chunk with a lower position could commit after a higher one had been
forwarded and the cursor had moved past it, and was then never analysed.
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

from iot.auth.v1 import auth_pb2_grpc
from iot.devices.v1 import devices_pb2, devices_pb2_grpc
from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc
from iotkit.config import Settings
from tests.conftest import Backend, start_suite
from tests.e2e.processes import all_forwarded, batch, start_telemetry, wait_serving
from tests.support import bearer, free_port, new_user

DEVICES, BATCHES, SIZE = 48, 20, 10
pytestmark = pytest.mark.e2e
START_US = int(time.time()) * 1_000_000 - 6 * 3600 * 1_000_000


async def _send(
    stub: telemetry_pb2_grpc.TelemetryServiceStub,
    token: list[tuple[str, str]],
    device_id: str,
    numbers: range,
) -> int:
    """Stream batches ``numbers`` of a device, resending those not acknowledged when a
    replica answers UNAVAILABLE (two processes on one SQLite file wait for its lock, and
    may give up under load), as a device does; answers the readings accepted as new."""

    async def requests(pending: list[int]) -> AsyncIterator[telemetry_pb2.ReadingBatch]:
        for n in pending:
            yield batch(n, device_id, START_US, size=SIZE, step_us=1_000_000)
            await asyncio.sleep(0)  # let every device's stream interleave with the others

    pending, accepted = list(numbers), 0
    while pending:
        try:
            async for ack in stub.StreamReadings(requests(list(pending)), metadata=token):
                assert not ack.rejected, ack
                pending.remove(ack.sequence)
                accepted += ack.accepted
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error  # never a lost batch
            await asyncio.sleep(0.2)
    return accepted


async def _analysed(backend: Backend) -> int:
    """Readings the detectors have taken in, late ones included (a second analysis is late)."""
    total = 0
    for (state,) in await backend.sql("analytics", "SELECT state FROM detectors"):
        values = state if isinstance(state, dict) else json.loads(str(state))
        total += int(values["readings"]) + int(values["late"])
    return total


async def test_two_replicas_store_and_analyse_every_reading_once(
    settings: Settings, tmp_path: Path
) -> None:
    # The schemas the processes take by default (iot_<service>), for Backend.sql.
    backend = Backend("postgresql" if settings.database_url else "sqlite", settings, "iot")
    suite = await start_suite(backend, ("auth", "devices", "analytics"))
    addresses = [suite.address("telemetry"), f"127.0.0.1:{free_port()}"]
    log = tmp_path / "telemetry.log"
    replicas = []
    try:
        for address in addresses:  # one after the other: both would create the tables at once
            replicas.append(start_telemetry(suite.settings, address, log))
            await wait_serving(address)
        async with (
            grpc.aio.insecure_channel(suite.address("auth")) as a,
            grpc.aio.insecure_channel(suite.address("devices")) as d,
            grpc.aio.insecure_channel(addresses[0]) as t1,
            grpc.aio.insecure_channel(addresses[1]) as t2,
        ):
            devices = devices_pb2_grpc.DeviceServiceStub(d)
            owner = bearer((await new_user(auth_pb2_grpc.AuthServiceStub(a))).access_token)
            stubs = [telemetry_pb2_grpc.TelemetryServiceStub(c) for c in (t1, t2)]
            tokens: dict[str, list[tuple[str, str]]] = {}
            for _ in range(DEVICES):
                made = await devices.RegisterDevice(
                    devices_pb2.RegisterDeviceRequest(name="r", type="temperature"), metadata=owner
                )
                issued = await devices.IssueDeviceCredential(
                    devices_pb2.IssueDeviceCredentialRequest(device_id=made.device_id),
                    metadata=owner,
                )
                tokens[made.device_id] = bearer(issued.token)

            async def device(index: int, device_id: str) -> int:
                # Half its batches through one replica, then the rest through the other
                # (a reconnect behind the load balancer): each stream has both writers.
                half = BATCHES // 2
                first, then = stubs[index % 2], stubs[(index + 1) % 2]
                token = tokens[device_id]
                return await _send(first, token, device_id, range(half)) + await _send(
                    then, token, device_id, range(half, BATCHES)
                )

            acked = sum(await asyncio.gather(*(device(i, d) for i, d in enumerate(tokens))))
        sent = DEVICES * BATCHES * SIZE
        stored = int(
            str((await backend.sql("telemetry", "SELECT sum(count) FROM chunks"))[0][0] or 0)
        )
        await all_forwarded(backend)
        assert (acked, stored) == (sent, sent)
        assert await _analysed(backend) == sent
    finally:
        for replica in replicas:
            replica.send_signal(signal.SIGTERM)
        for replica in replicas:
            try:
                # Off the loop, which serves the in-process services the stopping one calls.
                await asyncio.to_thread(replica.wait, 30)
            except subprocess.TimeoutExpired:
                # Graceful stops are the suite-up test's subject; here a slow one (seen at
                # load average 15) must not leave a process behind.
                replica.kill()
                replica.wait()
        await suite.aclose()

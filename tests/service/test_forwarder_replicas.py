"""The forwarder over several analytics replicas, against fake replicas on real gRPC servers.

Each stream's chunks go to its owner on the ring, in position order; when a
replica stops, what it had not acknowledged goes to the others and the
cursor still reaches the last chunk; when it comes back, its streams move
back to it, still in order for each replica. Analytics itself is faked here
(it acknowledges what it receives); tests/e2e/test_analytics_replicas.py runs
the real one.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from iot.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from iotkit.codec import encode
from iotkit.leases import AlwaysHeld
from iotkit.server import channel
from iotkit.service_tokens import ServiceTokenSource
from services.telemetry import forwarder as forwarder_module
from services.telemetry.forwarder import CURSOR, AnalyticsForwarder, StoredChunk
from services.telemetry.members import resolve
from services.telemetry.ring import owner
from tests.support import free_port

STREAMS = [f"stream-{k}" for k in range(12)]
DATA = encode(np.arange(3, dtype=np.int64), np.ones(3))


class Source:
    """Telemetry's store as the forwarder sees it: chunks by position, and cursors."""

    def __init__(self) -> None:
        self.chunks: list[StoredChunk] = []
        self.cursors: dict[str, int] = {}

    def add(self, count: int) -> None:
        for _ in range(count):
            position = len(self.chunks) + 1
            stream = STREAMS[position % len(STREAMS)]
            self.chunks.append(
                StoredChunk(position, stream, stream, "o", "generic", "m", 0, 0, DATA, 3)
            )

    async def chunks_after(self, *, position: int, limit: int) -> Sequence[StoredChunk]:
        return self.chunks[position : position + limit]

    async def cursor(self, *, name: str) -> int:
        return self.cursors.get(name, 0)

    async def save_cursor(self, *, name: str, position: int) -> None:
        self.cursors[name] = max(position, self.cursors.get(name, 0))


class Tokens:
    async def metadata(self) -> list[tuple[str, str]]:
        return []


class Replica(analytics_pb2_grpc.AnalyticsServiceServicer):
    """A fake analytics replica: takes a moment over each request, as analysis does, then
    records its chunks (here and in the log all replicas share, as their commits would
    land in one database) and acknowledges them."""

    def __init__(self, address: str, log: list[tuple[str, int]]) -> None:
        self.address = address
        self.log = log
        self.received: list[tuple[str, int]] = []
        self.going = asyncio.Event()  # cleared: it holds what it gets, unacknowledged
        self.going.set()
        self.server: grpc.aio.Server | None = None

    async def start(self) -> None:
        self.server = grpc.aio.server()
        analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server(self, self.server)
        checks = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(checks, self.server)
        self.server.add_insecure_port(self.address)
        await self.server.start()
        await checks.set("", health_pb2.HealthCheckResponse.SERVING)

    async def stop(self) -> None:
        assert self.server is not None
        await self.server.stop(0)

    async def AnalyzeReadings(
        self, request_iterator: AsyncIterator[analytics_pb2.AnalysisRequest], context: Any
    ) -> AsyncIterator[analytics_pb2.AnalysisResponse]:
        async for request in request_iterator:
            await asyncio.sleep(0.005)
            await self.going.wait()
            chunks = [(c.stream_id, c.position) for c in request.chunks]
            self.received += chunks
            self.log += chunks
            yield analytics_pb2.AnalysisResponse(watermark=request.chunks[-1].position)


async def live(forwarder: AnalyticsForwarder, count: int, within: float = 30) -> None:
    """Wait until the forwarder has found ``count`` replicas live."""
    deadline = time.monotonic() + within
    while len(forwarder.live()) != count:
        assert time.monotonic() < deadline, f"live: {forwarder.live()}"
        await asyncio.sleep(0.05)


async def caught_up(source: Source, forwarder: AnalyticsForwarder, within: float = 30) -> None:
    """Wait until the stored cursor passed every chunk (bounded, never timed)."""
    deadline = time.monotonic() + within
    while source.cursors.get(CURSOR, 0) < len(source.chunks):
        assert time.monotonic() < deadline, f"cursor at {source.cursors}, live {forwarder.live()}"
        await asyncio.sleep(0.05)


def in_order(received: list[tuple[str, int]]) -> bool:
    """True when each stream's chunks came in position order."""
    last: dict[str, int] = defaultdict(int)
    for stream, position in received:
        if position <= last[stream]:
            return False
        last[stream] = position
    return True


async def test_streams_go_to_their_owners_and_move_when_a_replica_stops_and_returns() -> None:
    log: list[tuple[str, int]] = []
    replicas = [Replica(f"127.0.0.1:{free_port()}", log) for _ in range(2)]
    addresses = [replica.address for replica in replicas]
    running = list(replicas)
    for replica in replicas:
        await replica.start()
    source = Source()
    shared = channel(",".join(addresses))
    forwarder = AnalyticsForwarder(
        source=source,
        channel=shared,
        tokens=cast(ServiceTokenSource, Tokens()),
        replicas=addresses,
        connect=channel,
        lease=AlwaysHeld(),
    )
    forwarder.start()
    try:
        await live(forwarder, 2)
        source.add(600)
        forwarder.notify()
        await caught_up(source, forwarder)
        assert in_order(log)
        # Each stream went to its owner only, and both replicas own some.
        for replica in replicas:
            streams = {stream for stream, _ in replica.received}
            assert streams and all(owner(s, addresses) == replica.address for s in streams)
            assert in_order(replica.received)

        gone, left = replicas
        running.remove(gone)
        await gone.stop()
        source.add(600)
        forwarder.notify()
        await caught_up(source, forwarder)
        assert forwarder.live() == [left.address]
        # Every chunk reached a replica; the survivor got each stream in order.
        received = {position for r in replicas for _, position in r.received}
        assert received == set(range(1, 1201))
        assert in_order(left.received)

        # It comes back while the survivor holds chunks of its streams, unacknowledged.
        left.going.clear()
        source.add(600)
        forwarder.notify()
        back = Replica(gone.address, log)
        since = len(log)
        running.append(back)
        await back.start()
        await live(forwarder, 2)
        source.add(600)
        forwarder.notify()
        await asyncio.sleep(0.2)  # room for a wrong move to happen; the order is checked
        left.going.set()
        await caught_up(source, forwarder)
        assert {s for s, _ in back.received} == {
            s for s in STREAMS if owner(s, addresses) == back.address
        }
        # Streams moved back only once the replica holding them had acknowledged what it
        # had: across both replicas, each stream's chunks were taken in order.
        assert in_order(log[since:])
        assert {p for r in (*replicas, back) for _, p in r.received} == set(range(1, 2401))
    finally:
        await forwarder.stop()
        await shared.close()
        for replica in running:
            await replica.stop()


async def test_replicas_behind_one_name_are_followed_as_it_resolves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One configured name (a headless Service, a scaled Compose service) that resolves to
    an address per replica: each is a member of the ring; a replica no longer listed hands
    its streams on, and a new one takes its share, each stream still in order."""
    monkeypatch.setattr(forwarder_module, "DISCOVER_SECONDS", 0.05)
    log: list[tuple[str, int]] = []
    replicas = [Replica(f"127.0.0.1:{free_port()}", log) for _ in range(3)]
    for replica in replicas:
        await replica.start()
    first, second, third = (replica.address for replica in replicas)
    listed = {"analytics:50054": [first, second]}

    async def resolver(address: str) -> list[str]:
        if address not in listed:
            raise OSError("unknown name")
        return listed[address]

    source = Source()
    shared = channel(first)
    forwarder = AnalyticsForwarder(
        source=source,
        channel=shared,
        tokens=cast(ServiceTokenSource, Tokens()),
        replicas=["analytics:50054"],
        connect=channel,
        lease=AlwaysHeld(),
        resolver=resolver,
    )
    forwarder.start()
    try:
        await live(forwarder, 2)
        assert sorted(forwarder.live()) == sorted([first, second])
        source.add(600)
        forwarder.notify()
        await caught_up(source, forwarder)
        for replica in replicas[:2]:
            streams = {stream for stream, _ in replica.received}
            assert streams and all(owner(s, [first, second]) == replica.address for s in streams)

        # The name stops listing the second replica (still running), and later lists a third.
        listed["analytics:50054"] = [first]
        await live(forwarder, 1)
        source.add(600)
        forwarder.notify()
        await caught_up(source, forwarder)
        listed["analytics:50054"] = [first, third]
        await live(forwarder, 2)
        since = len(replicas[2].received)
        source.add(600)
        forwarder.notify()
        await caught_up(source, forwarder)
        taken = {stream for stream, _ in replicas[2].received[since:]}
        assert taken and all(owner(s, [first, third]) == third for s in taken)
        assert in_order(log)
        assert {p for r in replicas for _, p in r.received} == set(range(1, 1801))

        # A name that does not resolve for a while keeps the members it had.
        listed.clear()
        await asyncio.sleep(0.3)
        assert sorted(forwarder.live()) == sorted([first, third])
    finally:
        await forwarder.stop()
        await shared.close()
        for replica in replicas:
            await replica.stop()


async def test_an_address_resolves_to_itself_unless_its_name_lists_several() -> None:
    assert await resolve("127.0.0.1:50054") == ["127.0.0.1:50054"]
    assert await resolve("[::1]:50054") == ["[::1]:50054"]
    assert await resolve("dns:///analytics:50054") == ["dns:///analytics:50054"]
    found = await resolve("localhost:50054")
    assert found == ["localhost:50054"] or set(found) <= {"127.0.0.1:50054", "[::1]:50054"}

"""Forwarding every stored chunk to analytics, each stream to the replica that owns it.

Chunk ids commit in id order however many telemetry replicas write (the
store draws them under a lock on PostgreSQL; SQLite has one writer), so
"everything up to position P" is a complete cursor. Telemetry reads chunks
after its durable cursor and sends each over a bidirectional stream to the
analytics replica that owns its stream on a rendezvous-hash ring of the
replicas that are live (configured addresses, or every address a configured
name resolves to, followed as they change; health-checked; see ``ring.py`` and
``members.py``). The cursor moves past a chunk only once its owner acknowledged
it, so if analytics is down or restarts, ingest goes on and forwarding
resumes from the cursor: no chunk is skipped.

When a replica goes away (its stream breaks, or an acknowledgement is
overdue), the chunks it had not acknowledged go, in order, to each stream's
next owner, which resumes the stream from analytics' own per-stream position
in the shared database: what the lost replica committed is skipped, the rest
analysed, none twice (analytics checks that position in the transaction that
stores results). A stream only changes owner once its old owner has
acknowledged everything of it that it holds; its new chunks wait until then,
so one stream's chunks are never analysed out of order by two replicas.
Telemetry replicas share the cursor (it only moves forward) and a lease
(``iotkit.leases``, a PostgreSQL advisory lock): only its holder reads new
chunks, so analytics is not sent every chunk once per telemetry replica. The
others keep their view of the cursor fresh, and one of them takes over when
the holder goes away. The lease only saves work: while two replicas both
forward (a holder that lost its connection and does not know yet), a chunk
both send is analysed once for the same reason as above.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from iot.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from iotkit.leases import Lease
from iotkit.service_tokens import ServiceTokenSource
from iotkit.tasks import cancel
from services.telemetry.members import Resolver, members, resolve
from services.telemetry.ring import owner

log = logging.getLogger(__name__)

CURSOR = "analytics.forwarded"
LEASE = "analytics-forwarder"
# A request carries what its replica's outbox holds, up to this many chunks or readings
# (whichever comes first; a larger chunk goes alone). Analytics joins a stream's chunks of
# one request into one detector call and checkpoints each stream once per request, so
# while it catches up (after a restart, or behind a burst) larger requests are cheaper
# per reading; 100,000 readings are about 1.6 MB as a message.
CHUNKS_PER_REQUEST = 512
READINGS_PER_REQUEST = 100_000
# Requests in flight per replica. Analytics takes them one at a time, so more in flight
# only queue there: on a saturated machine each reading waited behind them (memory soak,
# lag p50/p99: 4 in flight 0.75-1.1 s / 2.0 s, 2: 0.46 / 1.7 s, 1: 0.31 / 1.3 s). With
# one, what arrives meanwhile joins the next request, and analytics idles only for an ack's
# round trip.
WINDOW = 1
MAX_PENDING = 4096  # chunks read and not yet acknowledged, all replicas together
IDLE_POLL_SECONDS = 1.0
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)
FORGET_DEADLINE = 5.0
DISCOVER_SECONDS = 10.0  # how often the names of the analytics replicas are resolved again
HEALTH_DEADLINE = 2.0
# A replica that has not acknowledged a request for this long is taken for gone (a
# hung process or a silent network), and its streams move on.
ACK_DEADLINE = 30.0


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A stored chunk with what analytics needs to know of its stream."""

    position: int
    stream_id: str
    device_id: str
    owner_id: str
    device_type: str
    metric_name: str
    sampling_rate: int
    sampling_period_us: int
    data: bytes
    count: int  # readings in ``data``


class ChunkSource(Protocol):
    """Where the forwarder reads chunks and keeps its cursor (telemetry's store)."""

    async def chunks_after(self, *, position: int, limit: int) -> Sequence[StoredChunk]:
        """Chunks after ``position``, in position order."""
        ...

    async def cursor(self, *, name: str) -> int:
        """A stored cursor position."""
        ...

    async def save_cursor(self, *, name: str, position: int) -> None:
        """Store a cursor position."""
        ...


def request_of(chunks: Sequence[StoredChunk]) -> analytics_pb2.AnalysisRequest:
    """The analysis request carrying ``chunks``, each as stored (``StreamChunk.data``)."""
    return analytics_pb2.AnalysisRequest(
        chunks=[
            analytics_pb2.StreamChunk(
                position=chunk.position,
                stream_id=chunk.stream_id,
                device_id=chunk.device_id,
                owner_id=chunk.owner_id,
                device_type=chunk.device_type,
                metric_name=chunk.metric_name,
                sampling_rate=chunk.sampling_rate,
                sampling_period_us=chunk.sampling_period_us,
                data=chunk.data,
            )
            for chunk in chunks
        ]
    )


def _next_request(outbox: deque[StoredChunk]) -> list[StoredChunk]:
    """The chunks of the next request, taken from the front of ``outbox`` (not empty)."""
    batch = [outbox.popleft()]
    readings = batch[0].count
    while (
        outbox
        and len(batch) < CHUNKS_PER_REQUEST
        and readings + outbox[0].count <= READINGS_PER_REQUEST
    ):
        chunk = outbox.popleft()
        readings += chunk.count
        batch.append(chunk)
    return batch


@dataclass(eq=False)
class _Link:
    """The stream to one analytics replica and the chunks it holds, oldest first."""

    address: str
    channel: aio.Channel
    live: bool = False
    outbox: deque[StoredChunk] = field(default_factory=deque)
    # Requests written and not yet acknowledged, with when they were written.
    inflight: deque[tuple[float, list[StoredChunk]]] = field(default_factory=deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def held(self) -> list[StoredChunk]:
        """Every chunk it holds (sent or not), and forget them."""
        chunks = [chunk for _, sent in self.inflight for chunk in sent] + list(self.outbox)
        self.inflight.clear()
        self.outbox.clear()
        return chunks


class AnalyticsForwarder:
    """Keeps a stream open to each analytics replica and feeds it; see the module docstring."""

    def __init__(
        self,
        *,
        source: ChunkSource,
        channel: aio.Channel,
        tokens: ServiceTokenSource,
        replicas: Sequence[str],
        connect: Callable[[str], aio.Channel],
        lease: Lease,
        on_forwarded: Callable[[int], None] | None = None,
        resolver: Resolver = resolve,
    ) -> None:
        """``on_forwarded`` is told how many chunks each request carried (metrics);
        ``resolver`` finds the replicas behind each of ``replicas`` (see ``members``)."""
        self._source = source
        self._lease = lease
        self._on_forwarded = on_forwarded
        self._stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)
        self._tokens = tokens
        self._connect = connect
        self._configured = list(replicas)
        self._resolver = resolver
        self._resolved: dict[str, list[str]] = {address: [address] for address in replicas}
        self._links = {address: _Link(address, connect(address)) for address in replicas}
        self._link_tasks: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()  # new chunks stored, or room made
        self._moved = asyncio.Event()  # the cursor moved: save it
        self._tasks: list[asyncio.Task[None]] = []
        self._read = 0  # the last position read from the store
        self._pending: dict[int, StoredChunk] = {}  # read, not yet acknowledged
        self._holders: dict[str, _Link] = {}  # stream -> the live replica holding its chunks
        self._held: Counter[str] = Counter()  # stream -> chunks its holder has
        self._parked: dict[str, list[StoredChunk]] = {}  # stream -> chunks waiting for a move
        self._orphans: list[StoredChunk] = []  # chunks read while no replica was live
        self._owners: dict[str, _Link] = {}  # ring owners among the live replicas, cached
        self.acknowledged = 0

    async def forget_device(self, device_id: str) -> None:
        """Tell analytics a device was decommissioned and purged; raises when it cannot be told.

        The caller (the decommission follower) then keeps its event cursor, so
        the next round tells analytics again: at least once, in event order.
        """
        await self._stub.ForgetDevice(
            analytics_pb2.ForgetDeviceRequest(device_id=device_id),
            metadata=await self._tokens.metadata(),
            timeout=FORGET_DEADLINE,
        )

    def notify(self) -> None:
        """New chunks were stored (called by the writer after each commit)."""
        self._wake.set()

    def start(self) -> None:
        """Start forwarding in the background."""
        self._lease.start()
        self._tasks = [
            asyncio.create_task(self._dispatch(), name="analytics-forwarder"),
            asyncio.create_task(self._keep_cursor(), name="analytics-cursor"),
            asyncio.create_task(self._discover(), name="analytics-members"),
        ]
        for link in self._links.values():
            self._start_link(link)

    async def stop(self) -> None:
        """Stop forwarding; the cursor already holds what analytics acknowledged."""
        for task in [*self._tasks, *self._link_tasks.values()]:
            await cancel(task)
        self._tasks = []
        self._link_tasks = {}
        await self._lease.stop()
        for link in self._links.values():
            await link.channel.close()

    def _start_link(self, link: _Link) -> None:
        self._link_tasks[link.address] = asyncio.create_task(
            self._keep_link(link), name=f"analytics-link {link.address}"
        )

    async def _discover(self) -> None:
        """Follow the replicas behind the configured addresses (see ``members``)."""
        while True:
            self._resolved = await members(
                self._configured, resolver=self._resolver, previous=self._resolved
            )
            wanted = {address for found in self._resolved.values() for address in found}
            for address in sorted(wanted - set(self._links)):
                log.info("analytics replica found", extra={"address": address})
                link = self._links[address] = _Link(address, self._connect(address))
                self._owners.clear()
                self._start_link(link)
            for address in sorted(set(self._links) - wanted):
                log.info("analytics replica no longer listed", extra={"address": address})
                link = self._links.pop(address)
                await cancel(self._link_tasks.pop(address, None))
                self._down(link)  # what it held goes to its streams' next owners
                await link.channel.close()
            await asyncio.sleep(DISCOVER_SECONDS)

    def live(self) -> list[str]:
        """The addresses of the analytics replicas forwarded to now."""
        return [address for address, link in self._links.items() if link.live]

    async def _dispatch(self) -> None:
        """Read chunks after the cursor and hand each to its stream's replica."""
        failures = 0
        started = False
        while True:
            try:
                if not started:
                    self._read = self.acknowledged = await self._source.cursor(name=CURSOR)
                    started = True
                # Clear before looking, so that a commit in between still wakes us.
                self._wake.clear()
                if not self._lease.held:
                    await self._follow()
                    continue
                if len(self._pending) >= MAX_PENDING or not self.live():
                    await self._wake.wait()
                    continue
                chunks = await self._source.chunks_after(
                    position=self._read, limit=CHUNKS_PER_REQUEST
                )
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database away: ingest waits for it too
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                log.info("chunks not readable; retrying", extra={"error": type(exc).__name__})
                await asyncio.sleep(delay)
                continue
            if not chunks:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_POLL_SECONDS)
                continue
            for chunk in chunks:
                self._pending[chunk.position] = chunk
                self._assign(chunk)
            self._read = chunks[-1].position

    async def _follow(self) -> None:
        """While another replica forwards: move up to its cursor, for merging and for when
        this one takes over (what this one still has in flight drains meanwhile)."""
        stored = await self._source.cursor(name=CURSOR)
        if stored > self.acknowledged:
            self.acknowledged = stored
        if not self._pending and stored > self._read:
            self._read = stored
        await asyncio.sleep(IDLE_POLL_SECONDS)

    def _assign(self, chunk: StoredChunk) -> None:
        """Queue a pending chunk for its stream's replica, or park it (see the docstring)."""
        stream = chunk.stream_id
        if stream in self._parked:
            self._parked[stream].append(chunk)  # behind the chunks already waiting
            return
        target = self._owner(stream)
        if target is None:
            self._orphans.append(chunk)
            return
        holder = self._holders.get(stream)
        if holder is not None and holder is not target:
            # Moving: the old owner first acknowledges what it has of the stream.
            self._parked[stream] = [chunk]
            return
        self._holders[stream] = target
        self._held[stream] += 1
        target.outbox.append(chunk)
        target.ready.set()

    def _owner(self, stream: str) -> _Link | None:
        found = self._owners.get(stream)
        if found is None:
            live = self.live()
            if not live:
                return None
            found = self._owners[stream] = self._links[owner(stream, live)]
        return found

    def _acknowledged(self, chunks: Sequence[StoredChunk]) -> None:
        """Its replica acknowledged ``chunks``: release them, move the cursor."""
        for chunk in chunks:
            self._pending.pop(chunk.position, None)
            stream = chunk.stream_id
            self._held[stream] -= 1
            if self._held[stream] <= 0:
                del self._held[stream]
                self._holders.pop(stream, None)
                for waiting in self._parked.pop(stream, []):
                    self._assign(waiting)
        # Every chunk below the oldest pending one is acknowledged.
        cursor = min(self._pending) - 1 if self._pending else self._read
        if cursor > self.acknowledged:
            self.acknowledged = cursor
            self._moved.set()
        self._wake.set()

    def _up(self, link: _Link) -> None:
        link.live = True
        self._owners.clear()
        log.info("analytics replica up", extra={"address": link.address})
        orphans, self._orphans = self._orphans, []
        for chunk in orphans:
            self._assign(chunk)
        self._wake.set()

    def _down(self, link: _Link) -> None:
        """The replica went away: its chunks go, in order, to their streams' next owners."""
        if link.live:
            log.info("analytics replica down", extra={"address": link.address})
        link.live = False
        self._owners.clear()
        chunks = link.held()
        for stream in {chunk.stream_id for chunk in chunks}:
            self._held.pop(stream, None)
            self._holders.pop(stream, None)
            chunks += self._parked.pop(stream, [])
        for chunk in sorted(chunks, key=lambda c: c.position):
            self._assign(chunk)

    async def _keep_link(self, link: _Link) -> None:
        failures = 0
        while True:
            try:
                await self._session(link)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the replica away or restarting: the others go on
                if link.live:
                    failures = 0
                self._down(link)
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                log.info(
                    "analytics replica not reachable; retrying",
                    extra={"address": link.address, "error": type(exc).__name__, "in_s": delay},
                )
                await asyncio.sleep(delay)

    async def _session(self, link: _Link) -> None:
        health = health_pb2_grpc.HealthStub(link.channel)
        answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=HEALTH_DEADLINE)
        if answer.status != health_pb2.HealthCheckResponse.SERVING:
            raise ConnectionError("analytics replica not serving")
        stub = analytics_pb2_grpc.AnalyticsServiceStub(link.channel)
        call = stub.AnalyzeReadings(metadata=await self._tokens.metadata())
        room = asyncio.Semaphore(WINDOW)
        self._up(link)

        async def send() -> None:
            while True:
                link.ready.clear()
                if not link.outbox:
                    await link.ready.wait()
                    continue
                await room.acquire()
                batch = _next_request(link.outbox)
                link.inflight.append((time.monotonic(), batch))
                await call.write(request_of(batch))
                if self._on_forwarded is not None:
                    self._on_forwarded(len(batch))

        async def receive() -> None:
            while True:
                answer = await call.read()
                if answer is aio.EOF:
                    raise ConnectionError("analytics closed the stream")
                room.release()
                _, batch = link.inflight.popleft()
                self._acknowledged(batch)

        async def watch() -> None:
            while True:
                await asyncio.sleep(ACK_DEADLINE / 4)
                if link.inflight and time.monotonic() - link.inflight[0][0] > ACK_DEADLINE:
                    raise TimeoutError("analytics replica stopped acknowledging")

        tasks = [asyncio.create_task(job()) for job in (send, receive, watch)]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            call.cancel()

    async def _keep_cursor(self) -> None:
        """Store the cursor whenever it moved (and again after a failure), never back."""
        saved = 0
        while True:
            await self._moved.wait()
            self._moved.clear()
            position = self.acknowledged
            if position <= saved:
                continue
            try:
                await self._source.save_cursor(name=CURSOR, position=position)
                saved = position
            except Exception as exc:  # the database away: keep the position, try again
                log.info("cursor not saved; retrying", extra={"error": type(exc).__name__})
                await asyncio.sleep(RETRY_SECONDS[0])
                self._moved.set()

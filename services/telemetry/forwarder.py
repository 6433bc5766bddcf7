"""Forwarding every stored chunk to analytics over one bidirectional stream.

Chunk ids commit in id order however many telemetry replicas write (the
store draws them under a lock on PostgreSQL; SQLite has one writer), so
"everything up to position P" is a complete cursor. Telemetry sends chunks
after its durable cursor, a window of requests in flight, and moves the
cursor only when analytics acknowledges a watermark. If analytics is down or
restarts, ingest goes on and forwarding resumes from the cursor: no chunk is
skipped, and analytics skips what it has already analysed, so none is
analysed twice. Replicas each forward, sharing the cursor (it only moves
forward); a chunk both send is analysed once for the same reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from grpc import aio

from iot.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from iotkit.codec import decode
from iotkit.service_tokens import ServiceTokenSource
from iotkit.tasks import cancel

log = logging.getLogger(__name__)

CURSOR = "analytics.forwarded"
CHUNKS_PER_REQUEST = 64
WINDOW = 4  # requests in flight
IDLE_POLL_SECONDS = 1.0
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)
FORGET_DEADLINE = 5.0


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
    """The analysis request carrying ``chunks``."""
    messages = []
    for chunk in chunks:
        timestamps, values = decode(chunk.data)
        messages.append(
            analytics_pb2.StreamChunk(
                position=chunk.position,
                stream_id=chunk.stream_id,
                device_id=chunk.device_id,
                owner_id=chunk.owner_id,
                device_type=chunk.device_type,
                metric_name=chunk.metric_name,
                sampling_rate=chunk.sampling_rate,
                sampling_period_us=chunk.sampling_period_us,
                timestamps=timestamps.tolist(),
                values=values.tolist(),
            )
        )
    return analytics_pb2.AnalysisRequest(chunks=messages)


class AnalyticsForwarder:
    """Keeps one stream to analytics open and feeds it; see the module docstring."""

    def __init__(
        self,
        *,
        source: ChunkSource,
        channel: aio.Channel,
        tokens: ServiceTokenSource,
        on_forwarded: Callable[[int], None] | None = None,
    ) -> None:
        """``on_forwarded`` is told how many chunks each request carried (metrics)."""
        self._source = source
        self._on_forwarded = on_forwarded
        self._stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)
        self._tokens = tokens
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
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
        self._task = asyncio.create_task(self._run(), name="analytics-forwarder")

    async def stop(self) -> None:
        """Stop forwarding; the cursor already holds what analytics acknowledged."""
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._session()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # analytics away or restarting: ingest goes on, retry later
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                log.info(
                    "analytics not reachable; retrying",
                    extra={"error": type(exc).__name__, "in_s": delay},
                )
                await asyncio.sleep(delay)

    async def _session(self) -> None:
        position = await self._source.cursor(name=CURSOR)
        self.acknowledged = position
        call = self._stub.AnalyzeReadings(metadata=await self._tokens.metadata())
        room = asyncio.Semaphore(WINDOW)

        async def send() -> None:
            sent = position
            while True:
                # Clear before looking, so that a commit in between still wakes us.
                self._wake.clear()
                chunks = await self._source.chunks_after(position=sent, limit=CHUNKS_PER_REQUEST)
                if not chunks:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), IDLE_POLL_SECONDS)
                    continue
                await room.acquire()
                await call.write(request_of(chunks))
                sent = chunks[-1].position
                if self._on_forwarded is not None:
                    self._on_forwarded(len(chunks))

        async def receive() -> None:
            while True:
                answer = await call.read()
                if answer is aio.EOF:
                    raise ConnectionError("analytics closed the stream")
                room.release()
                if answer.watermark > self.acknowledged:
                    self.acknowledged = answer.watermark
                    await self._source.save_cursor(name=CURSOR, position=answer.watermark)

        sender = asyncio.create_task(send())
        receiver = asyncio.create_task(receive())
        try:
            done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in (sender, receiver):
                task.cancel()
            call.cancel()

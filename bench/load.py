"""The ingest load: many device streams sending batches as fast as telemetry acknowledges them.

It runs in a process of its own (:func:`run_elsewhere`) so that building and
sending the batches does not take CPU from the telemetry process it measures.
Each device sends over its own ``StreamReadings`` call with its own device
token, keeps up to ``in_flight`` batches unacknowledged, and samples its
simulator signal (:mod:`tools.signals`) at ``rate_hz`` from ``start_us`` on:
the load is a fleet back-filling history faster than real time. Only
acknowledged readings count, and only those acknowledged inside the
measuring window, after a warm-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from grpc import aio

from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc
from iotkit.server import channel
from tools.signals import MODELS, SignalSource

POOL = 1 << 16
"""Distinct values per stream; batches reuse them cyclically (timestamps keep rising)."""
CHANNELS = 4
"""Connections the streams are spread over."""


@dataclass(frozen=True, slots=True)
class Device:
    """One device of the load: its id, token, type and signal seed."""

    device_id: str
    token: str
    device_type: str
    seed: int


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """What to send, where and for how long."""

    address: str
    devices: tuple[Device, ...]
    batch_size: int
    seconds: float
    warmup: float
    start_us: int
    in_flight: int = 4
    rate_hz: float = 1000.0
    # Sequence numbers (and so timestamps) start here: a second run continues the first.
    first_batch: int = 0
    # When set, each device sends this many batches, waits for their acks and stops;
    # the window is then the whole run.
    batches: int = 0
    # Each device's values, in the order of ``devices`` (a recorded series, repeated);
    # the simulator's signal when empty.
    pools: tuple[np.ndarray, ...] = ()


@dataclass
class LoadResult:
    """What telemetry acknowledged."""

    readings: int = 0  # accepted inside the measuring window
    batches: int = 0  # acknowledged inside the window
    seconds: float = 0.0
    total_accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    client_cpu: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    next_batch: int = 0

    @property
    def rate(self) -> float:
        """Readings acknowledged per second inside the window."""
        return self.readings / self.seconds if self.seconds else 0.0

    @property
    def batch_rate(self) -> float:
        """Batches (messages) acknowledged per second inside the window."""
        return self.batches / self.seconds if self.seconds else 0.0

    def count(
        self, ack: telemetry_pb2.BatchAck, sent: dict[int, float], window: tuple[float, float]
    ) -> None:
        """Count an acknowledgement now; ``sent`` holds when each unacknowledged batch went."""
        now = time.perf_counter()
        self.total_accepted += ack.accepted
        self.rejected += ack.rejected
        self.duplicates += ack.duplicates
        first = sent.pop(ack.sequence, now)
        if window[0] <= now < window[1]:
            self.readings += ack.accepted
            self.batches += 1
            self.latencies_ms.append((now - first) * 1000)

    def latency(self, quantile: float) -> float:
        """A quantile of the time from sending a batch to its ack, in ms."""
        return float(np.quantile(self.latencies_ms, quantile)) if self.latencies_ms else 0.0


def values_pool(device: Device, *, rate_hz: float, start_us: int, size: int = POOL) -> np.ndarray:
    """The first ``size`` values of a device's simulator signal (with its anomalies)."""
    source = SignalSource(device.device_type, rate_hz=rate_hz, start_us=start_us, seed=device.seed)
    values = source.take(size + size // 4).values[:size]  # gaps drop some readings
    return np.resize(values, size)


def pool_of(plan: LoadPlan, index: int) -> np.ndarray:
    """The values device ``index`` of the plan sends, cyclically: its own, else its signal's."""
    if plan.pools:
        return plan.pools[index]
    return values_pool(plan.devices[index], rate_hz=plan.rate_hz, start_us=plan.start_us)


def batch_arrays(plan: LoadPlan, pool: np.ndarray, sequence: int) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps and values of batch ``sequence`` of a device."""
    period = max(1, round(1_000_000 / plan.rate_hz))
    first = sequence * plan.batch_size
    timestamps = plan.start_us + (first + np.arange(plan.batch_size, dtype=np.int64)) * period
    offset = first % pool.size
    values = np.take(pool, np.arange(offset, offset + plan.batch_size), mode="wrap")
    return timestamps, values


def reading_batch(
    plan: LoadPlan, pool: np.ndarray, sequence: int, *, device_id: str, metric: str
) -> telemetry_pb2.ReadingBatch:
    """Batch ``sequence`` of a device as a message (``device_id`` "" when a topic names it)."""
    timestamps, values = batch_arrays(plan, pool, sequence)
    return telemetry_pb2.ReadingBatch(
        sequence=sequence,
        streams=[
            telemetry_pb2.StreamReadings(
                device_id=device_id,
                metric_name=metric,
                timestamps=timestamps.tolist(),
                values=values.tolist(),
            )
        ],
    )


async def _device(
    plan: LoadPlan,
    index: int,
    stub: telemetry_pb2_grpc.TelemetryServiceStub,
    window: tuple[float, float],
    result: LoadResult,
    stop: asyncio.Event,
) -> int:
    device = plan.devices[index]
    pool = pool_of(plan, index)
    metric = MODELS[device.device_type].metric
    call = stub.StreamReadings(metadata=[("authorization", f"Bearer {device.token}")])
    room = asyncio.Semaphore(plan.in_flight)
    sent: dict[int, float] = {}

    async def acks() -> None:
        try:
            await read_acks()
        finally:
            for _ in range(plan.in_flight):  # a sender waiting for room must see the end
                room.release()

    async def read_acks() -> None:
        while True:
            ack = await call.read()
            if ack is aio.EOF:
                return
            room.release()
            result.count(ack, sent, window)

    reader = asyncio.create_task(acks())
    sequence = plan.first_batch
    last = plan.first_batch + plan.batches if plan.batches else None
    try:
        while not stop.is_set():
            await room.acquire()
            if stop.is_set() or reader.done():
                break
            if sequence == last:
                for _ in range(plan.in_flight - 1):  # every batch acknowledged
                    await room.acquire()
                break
            batch = reading_batch(plan, pool, sequence, device_id=device.device_id, metric=metric)
            sent[sequence] = time.perf_counter()
            await call.write(batch)
            sequence += 1
        if reader.done():
            reader.result()
    except aio.AioRpcError as exc:
        result.errors.append(f"{exc.code().name}: {exc.details()}")
    except asyncio.InvalidStateError:  # the server ended the call: its status says why
        result.errors.append(f"{(await call.code()).name}: {await call.details()}")
    finally:
        reader.cancel()
        call.cancel()
        with contextlib.suppress(BaseException):
            await reader
    return sequence


async def drive(plan: LoadPlan) -> LoadResult:
    """Send the load and count the acks (in the calling process)."""
    result = LoadResult()
    cpu = time.process_time()
    channels = [channel(plan.address) for _ in range(CHANNELS)]
    stubs = [telemetry_pb2_grpc.TelemetryServiceStub(c) for c in channels]
    stop = asyncio.Event()
    begin = time.perf_counter() + (0.0 if plan.batches else plan.warmup)
    window = (begin, float("inf") if plan.batches else begin + plan.seconds)
    try:
        tasks = [
            asyncio.create_task(_device(plan, i, stubs[i % CHANNELS], window, result, stop))
            for i in range(len(plan.devices))
        ]
        if not plan.batches:
            await asyncio.sleep(plan.warmup + plan.seconds)
            stop.set()
        sequences = await asyncio.gather(*tasks)
        result.next_batch = max(sequences, default=plan.first_batch)
    finally:
        for open_channel in channels:
            await open_channel.close()
    result.seconds = time.perf_counter() - begin if plan.batches else plan.seconds
    result.client_cpu = time.process_time() - cpu
    return result


def _run(drive_load: Callable[..., Coroutine[Any, Any, LoadResult]], *args: Any) -> LoadResult:
    return asyncio.run(drive_load(*args))


async def elsewhere(
    drive_load: Callable[..., Coroutine[Any, Any, LoadResult]], *args: Any
) -> LoadResult:
    """Run a load's coroutine function (a module-level one) in a fresh process, so that
    making the load takes no CPU from this one; answers its result."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return await asyncio.get_running_loop().run_in_executor(pool, _run, drive_load, *args)


async def run_elsewhere(plan: LoadPlan) -> LoadResult:
    """Run :func:`drive` in a fresh process and answer its result."""
    return await elsewhere(drive, plan)

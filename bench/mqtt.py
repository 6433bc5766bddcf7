"""MQTT ingest into SQLite beside gRPC's, in the same run: ``python -m bench --only mqtt``.

Auth, devices and telemetry run as their own processes (:mod:`bench.services`)
beside a Mosquitto of the job's own (:mod:`iotsuite.mosquitto`); devices
provisions it as each device's credential is issued. The load runs in another
process: 100 devices, each connected with its id and credential, publish
protobuf ``ReadingBatch`` messages of 1,000 readings at QoS 1, at most
``in_flight`` each without a ``BatchAck`` on their ack topic; only readings
acknowledged inside the measuring window count. Then the same devices stream
the same kind of batches over gRPC ``StreamReadings`` (later timestamps), the
figure beside it.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.fleet import make_fleet
from bench.load import (
    Device,
    LoadPlan,
    LoadResult,
    elsewhere,
    reading_batch,
    run_elsewhere,
    values_pool,
)
from bench.report import Figure, JobResult
from bench.services import cpu_seconds, free_port, running
from iot.telemetry.v1 import telemetry_pb2
from iotkit.mqtt import BrokerAddress, Message, MqttClient, acks_topic, readings_topic
from iotsuite import mosquitto
from tools.signals import MODELS

MQTT_TITLE = "18. MQTT ingest into SQLite"
DEVICES = 100
BATCH = 1000
WARMUP = 3.0
IN_FLIGHT = 4
TARGET = 500_000


async def _publisher(
    device: Device, plan: LoadPlan, broker: BrokerAddress, result: LoadResult, **run: Any
) -> int:
    """One device publishing until ``run["stop"]`` is set, counting acks in ``run["window"]``;
    answers the next sequence number."""
    window: tuple[float, float] = run["window"]
    stop: asyncio.Event = run["stop"]
    metric = MODELS[device.device_type].metric
    pool = values_pool(device, rate_hz=plan.rate_hz, start_us=plan.start_us)
    room = asyncio.Semaphore(plan.in_flight)
    sent: dict[int, float] = {}

    def acknowledged(message: Message) -> None:
        ack = telemetry_pb2.BatchAck.FromString(message.payload)
        room.release()
        result.count(ack, sent, window)
        if ack.rejections and len(result.errors) < 3:
            result.errors.append(ack.rejections[0].reason)

    client = MqttClient(
        broker=broker,
        username=device.device_id,
        password=device.token,
        subscriptions=(acks_topic(device.device_id),),
        on_message=acknowledged,
    )
    await client.start(timeout=30)
    sequence = plan.first_batch
    try:
        while not stop.is_set():
            await room.acquire()
            if stop.is_set():
                break
            batch = reading_batch(plan, pool, sequence, device_id="", metric=metric)
            sent[sequence] = time.perf_counter()
            await client.publish(
                readings_topic(device.device_id),
                batch.SerializeToString(),
                content_type="application/x-protobuf",
            )
            sequence += 1
    except ConnectionError as exc:
        result.errors.append(str(exc))
    finally:
        client.close()
    return sequence


async def _drive(plan: LoadPlan, broker: BrokerAddress) -> LoadResult:
    result = LoadResult()
    cpu = time.process_time()
    stop = asyncio.Event()
    begin = time.perf_counter() + plan.warmup
    window = (begin, begin + plan.seconds)
    tasks = [
        asyncio.create_task(_publisher(d, plan, broker, result, window=window, stop=stop))
        for d in plan.devices
    ]
    await asyncio.sleep(plan.warmup + plan.seconds)
    stop.set()
    sequences = await asyncio.gather(*tasks)
    result.next_batch = max(sequences, default=plan.first_batch)
    result.seconds = plan.seconds
    result.client_cpu = time.process_time() - cpu
    return result


async def measure(*, seconds: float) -> JobResult:
    """MQTT ingest of 100 devices into SQLite, and gRPC's of the same devices."""
    job = JobResult(when=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", options="")
    with tempfile.TemporaryDirectory(prefix="iot-bench-mqtt-") as tmp:
        broker = mosquitto.prepare(Path(tmp), port=free_port(), persistent=False)
        process = mosquitto.start(broker)
        try:
            async with running("sqlite", mqtt_url=broker.url) as suite:
                fleet = await make_fleet(suite, DEVICES)
                plan = LoadPlan(
                    address=suite.address("telemetry"),
                    devices=fleet.devices,
                    batch_size=BATCH,
                    seconds=seconds,
                    warmup=WARMUP,
                    start_us=time.time_ns() // 1000 - 6 * 3600 * 1_000_000,
                    in_flight=IN_FLIGHT,
                )
                pid = suite.pid("telemetry")
                cpu = cpu_seconds(pid)
                published = await elsewhere(_drive, plan, BrokerAddress("127.0.0.1", broker.port))
                cpu = cpu_seconds(pid) - cpu
                await asyncio.sleep(2.0)  # the last acknowledgements go out
                streamed = await run_elsewhere(
                    replace(plan, first_batch=published.next_batch + IN_FLIGHT + 1)
                )
        finally:
            mosquitto.stop(process)
    per_reading = cpu * 1e6 / max(1, published.total_accepted)
    errors = published.errors + streamed.errors
    job.sections[MQTT_TITLE] = [
        Figure(
            f"MQTT QoS 1, {DEVICES} devices, protobuf messages of {BATCH:,} readings",
            "readings/s",
            published.rate,
            "gRPC StreamReadings of the same devices and batch size, same run",
            streamed.rate,
            f"stored before the PUBACK and the BatchAck on the device's ack topic; p50 ack "
            f"{published.latency(0.5):.0f} ms, p99 {published.latency(0.99):.0f} ms; telemetry "
            f"{per_reading:.2f} µs CPU per reading; the broker, the publishers and telemetry "
            "share the machine's two cores" + (f"; errors: {errors[:3]}" if errors else ""),
            target=f"≥ {TARGET:,} readings/s",
            met=published.rate >= TARGET,
        )
    ]
    return job

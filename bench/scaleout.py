"""Several processes of a hot path on one host: the gateway's workers and telemetry's
replicas, 1 against 2.

Auth and devices run as processes on SQLite; the gateway runs as ``python -m
gateway`` with ``IOT_GATEWAY_WORKERS=1``, then again with 2 (uvicorn's
supervisor, one shared port). The load comes from two other processes, each
with 16 keep-alive HTTP/1.1 connections sending one request at a time over
raw asyncio streams (cheaper per request than an HTTP client library, so
that the load generator takes less of the two cores than the gateway):
``GET /v1/devices/{id}`` with a bearer token (the gateway's work: route,
transcode, auth metadata, one gRPC call to devices, the envelope) and ``GET
/healthz`` (the gateway alone). On this two-core machine the load generator,
devices and the gateway share the cores, so a second worker gains only what
the cores have left; the figure says how much.

Telemetry: auth, devices and telemetry on a fresh PostgreSQL database (replicas
need it); 100 devices stream batches of 1,000 readings from two load processes,
half the devices each, first both to one telemetry process, then each half to
its own replica (a second ``python -m services.telemetry`` on its own port, as
``iot up --replicas telemetry=2`` runs it). Readings acknowledged per second
after commit, both loads together.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from bench import telemetry
from bench.fleet import make_fleet
from bench.load import LoadPlan, run_elsewhere
from bench.report import Figure, JobResult
from bench.services import GATEWAY, free_port, running

SCALE_TITLE = "17. Several processes of the hot paths on one host: gateway and telemetry"
SECONDS = 8.0
WARMUP = 2.0
GENERATORS = 2
CONNECTIONS = 16


@dataclass(frozen=True, slots=True)
class Load:
    """What one load process sends, and for how long."""

    port: int
    path: str
    token: str
    seconds: float
    warmup: float


async def _connection(
    load: Load,
    counts: list[int],
    stop_at: float,
    count_from: float,
    latencies: list[float] | None = None,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", load.port)
    request = (
        f"GET {load.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + (f"Authorization: Bearer {load.token}\r\n" if load.token else "")
        + "\r\n"
    ).encode()
    try:
        while (now := time.monotonic()) < stop_at:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if now >= count_from:
                counts[0 if status == 200 else 1] += 1
                if latencies is not None:
                    latencies.append(time.monotonic() - now)
    finally:
        writer.close()


def _generate(load: Load, answers: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """One load process: CONNECTIONS connections until the time is up; puts (ok, other,
    seconds of each counted request)."""

    async def run() -> tuple[int, int, list[float]]:
        counts = [0, 0]
        latencies: list[float] = []
        start = time.monotonic()
        await asyncio.gather(
            *(
                _connection(
                    load, counts, start + load.warmup + load.seconds, start + load.warmup, latencies
                )
                for _ in range(CONNECTIONS)
            )
        )
        return counts[0], counts[1], latencies

    answers.put(asyncio.run(run()))


@dataclass(frozen=True, slots=True)
class Sample:
    """What the load processes saw: requests/s answered 200, other answers, and the
    seconds each counted request took."""

    rate: float
    failed: int
    latencies: list[float]


def sample(load: Load) -> Sample:
    """Run the load processes (GENERATORS x CONNECTIONS connections) once; blocks."""
    context = multiprocessing.get_context("spawn")
    answers = context.Queue()
    workers = [context.Process(target=_generate, args=(load, answers)) for _ in range(GENERATORS)]
    for worker in workers:
        worker.start()
    results = [answers.get(timeout=load.seconds + load.warmup + 60) for _ in workers]
    for worker in workers:
        worker.join()
    return Sample(
        sum(r[0] for r in results) / load.seconds,
        sum(r[1] for r in results),
        [seconds for r in results for seconds in r[2]],
    )


def _rate(load: Load) -> tuple[float, int]:
    """Requests per second answered 200 across the load processes, and the others."""
    found = sample(load)
    return found.rate, found.failed


async def measure() -> JobResult:
    """The gateway's requests/s with one worker and with two, on the same services."""
    job = JobResult(when=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", options="")
    rates: dict[tuple[str, int], tuple[float, int]] = {}
    async with running("sqlite", ("auth", "devices")) as suite:
        fleet = await make_fleet(suite, 1)
        device = fleet.devices[0].device_id
        port = suite.settings.gateway_port
        paths = {"device": f"/v1/devices/{device}", "healthz": "/healthz"}
        for workers in (1, 2):
            await suite.start([GATEWAY], env={"IOT_GATEWAY_WORKERS": str(workers)})
            try:
                for name, path in paths.items():
                    load = Load(port, path, fleet.access_token, SECONDS, WARMUP)
                    rates[(name, workers)] = await asyncio.to_thread(_rate, load)
            finally:
                await suite.stop(GATEWAY)
    figures = []
    for name, label in (
        ("device", "GET /v1/devices/{id} through the gateway (gRPC to devices)"),
        ("healthz", "GET /healthz (the gateway alone)"),
    ):
        (two, failed_two), (one, failed_one) = rates[(name, 2)], rates[(name, 1)]
        figures.append(
            Figure(
                f"{label}, 2 gateway workers",
                "requests/s",
                two,
                "the same with 1 gateway worker, same run",
                one,
                f"{GENERATORS} load processes x {CONNECTIONS} keep-alive connections, "
                f"{SECONDS:.0f} s after {WARMUP:.0f} s of warm-up; answers other than 200: "
                f"{failed_one} with 1 worker, {failed_two} with 2; the load, devices and the "
                "gateway share the two cores",
                target="> 1.0x",
                met=two > one,
            )
        )
    figures.append(await _telemetry())
    job.sections[SCALE_TITLE] = figures
    return job


async def _ingest(plans: list[LoadPlan]) -> tuple[float, int]:
    """Readings/s acknowledged by the loads together, and the next batch number to use."""
    results = await asyncio.gather(*(run_elsewhere(plan) for plan in plans))
    return sum(r.rate for r in results), max(r.next_batch for r in results)


async def _telemetry() -> Figure:
    """Ingest with one telemetry process, then with two replicas, the same load."""
    async with running("postgresql", ("auth", "devices", "telemetry")) as suite:
        fleet = await make_fleet(suite, telemetry.DEVICES)
        halves = (fleet.devices[::2], fleet.devices[1::2])
        first = suite.address("telemetry")
        start_us = time.time_ns() // 1000 - 6 * 3600 * 1_000_000

        def plans(addresses: tuple[str, str], first_batch: int) -> list[LoadPlan]:
            return [
                LoadPlan(
                    address=address,
                    devices=devices,
                    batch_size=telemetry.BATCH,
                    seconds=SECONDS,
                    warmup=WARMUP,
                    start_us=start_us,
                    rate_hz=telemetry.RATE_HZ,
                    first_batch=first_batch,
                )
                for address, devices in zip(addresses, halves, strict=True)
            ]

        one, next_batch = await _ingest(plans((first, first), 0))
        second = f"127.0.0.1:{free_port()}"
        await suite.start_replica("telemetry", 2, second)
        two, _ = await _ingest(plans((first, second), next_batch + 1))
    return Figure(
        f"StreamReadings into PostgreSQL, {telemetry.DEVICES} devices, 2 telemetry replicas",
        "readings/s",
        two,
        "the same load on 1 telemetry process, same run",
        one,
        f"batches of {telemetry.BATCH:,}, acked after commit; two load processes of half the "
        "devices each; the loads, PostgreSQL, auth, devices and telemetry share the two cores",
        target="> 1.0x",
        met=two > one,
    )

"""Several processes of a hot path on one host: the gateway's workers, 1 against 2.

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
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from bench.fleet import make_fleet
from bench.report import Figure, JobResult
from bench.services import GATEWAY, running

SCALE_TITLE = "17. Several gateway processes on one host"
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


async def _connection(load: Load, counts: list[int], stop_at: float, count_from: float) -> None:
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
    finally:
        writer.close()


def _generate(load: Load, answers: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """One load process: CONNECTIONS connections until the time is up; puts (ok, other)."""

    async def run() -> list[int]:
        counts = [0, 0]
        start = time.monotonic()
        await asyncio.gather(
            *(
                _connection(load, counts, start + load.warmup + load.seconds, start + load.warmup)
                for _ in range(CONNECTIONS)
            )
        )
        return counts

    answers.put(asyncio.run(run()))


def _rate(load: Load) -> tuple[float, int]:
    """Requests per second answered 200 across the load processes, and the others."""
    context = multiprocessing.get_context("spawn")
    answers = context.Queue()
    workers = [context.Process(target=_generate, args=(load, answers)) for _ in range(GENERATORS)]
    for worker in workers:
        worker.start()
    results = [answers.get(timeout=load.seconds + load.warmup + 60) for _ in workers]
    for worker in workers:
        worker.join()
    ok = sum(r[0] for r in results)
    return ok / load.seconds, sum(r[1] for r in results)


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
    job.sections[SCALE_TITLE] = figures
    return job

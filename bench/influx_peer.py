"""InfluxDB side by side: ingest, storage and the chart's query on the same readings.

``python -m bench --only influx`` (opt-in). The peer is InfluxDB 1.x from
Debian (``apt-get install influxdb``); the job installs nothing, and without
``influxd`` on the PATH it says so and measures our side alone, its peer
column empty.

The job starts an ``influxd`` of its own from a config it writes into a
temporary directory: its own ports, its data, WAL and meta directories
there, usage reporting, its self-monitoring database and its per-request
logs off, the TSM engine at its defaults (a WAL write is fsynced before the
204, as our commit is before the ack). Telemetry runs on SQLite, then on
PostgreSQL, as the other jobs run it (:mod:`bench.services`). Every system
gets the same readings, one a second per device, ending before now:

- NAB: the development half of the Numenta Anomaly Benchmark (real
  recordings); device i sends series i mod 31, repeated to length, on a new
  time grid (the series' own timestamps are not kept);
- the device simulator's signals (:mod:`tools.signals`), rounded to each
  sensor's resolution.

Ingest: ``DEVICES`` devices x ``READINGS`` readings in batches of 5,000 (the
batch InfluxDB recommends for its line protocol; ours the same size), each
device a client with up to ``IN_FLIGHT`` batches unacknowledged, from a
process of its own: ours over gRPC ``StreamReadings`` (:mod:`bench.load`),
InfluxDB's over HTTP ``/write`` (bodies encoded before the clock starts, gzip
off for both). The clock runs from the first send to the last
acknowledgement; a count over everything then checks all was stored.
Storage: bytes on disk per reading, InfluxDB's right after the ingest (TSM
and WAL) and after a full compaction (``influxd`` restarted with the two
cold durations that trigger one at 1 s), ours as SQLite's pages or
PostgreSQL's relation sizes. The chart: one stream of 1,000,000 readings,
min/max in 1,900 buckets (our ``GetStreamData`` with ``max_points`` 3,802,
as the console asks; InfluxQL ``GROUP BY time``), and 10,000 raw readings.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import psycopg

from bench import nab, nab_bench
from bench.fleet import make_fleet
from bench.load import (
    Device,
    LoadPlan,
    LoadResult,
    batch_arrays,
    elsewhere,
    pool_of,
    run_elsewhere,
)
from bench.load import values_pool as simulator_pool
from bench.report import Figure, JobResult
from bench.services import RunningServices, cpu_seconds, free_port, running
from bench.telemetry import telemetry_storage
from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc
from iotkit.convert import micros_timestamp
from iotkit.server import channel
from tools.signals import DEVICE_TYPES

INFLUX_TITLE = "21. InfluxDB side by side: ingest, storage, the chart's query"
DEVICES = 100
READINGS = 50_000
"""Readings per device in each dataset's ingest: 5,000,000 in all."""
BATCH = 5_000
"""Points per request: InfluxDB's recommended line-protocol batch, and our batch size here."""
IN_FLIGHT = 4
PEER_IN_FLIGHT = (1, IN_FLIGHT)
"""Requests a client keeps open in InfluxDB's ingest runs (its best is its figure)."""
STEP_US = 1_000_000
CHART_READINGS = 1_000_000
BUCKETS = 1_900
MAX_POINTS = 2 * BUCKETS + 2
"""The chart's request: a min and a max per bucket, and the range's first and last reading."""
RAW_POINTS = 10_000
QUERY_RUNS = 50
MEASUREMENT = "readings"
QUERIES = {
    "chart": (
        f"chart of 1,000,000 readings, {BUCKETS:,} min/max buckets",
        "GROUP BY time, min(value), max(value)",
    ),
    "raw": (f"raw range of {RAW_POINTS:,} readings", "SELECT value"),
}
"""Each query timed: what the figure says, and the InfluxQL beside it."""
CHART_DATABASE = "chart"
MISSING = "InfluxDB not installed: apt-get install influxdb"
READY_TIMEOUT = 60.0
COMPACTION_TIMEOUT = 300.0
DAY_US = 86_400 * 1_000_000


def _escape(text: str, specials: str) -> str:
    for char in "\\" + specials:
        text = text.replace(char, "\\" + char)
    return text


def line_protocol(
    measurement: str, tags: Mapping[str, str], timestamps_us: np.ndarray, values: np.ndarray
) -> bytes:
    """A batch as InfluxDB line protocol at microsecond precision (``/write?precision=u``):
    one line a reading, its value the float field ``value``."""
    if not np.isfinite(values).all():
        raise ValueError("values: line protocol has no NaN or infinity")
    key = _escape(measurement, ", ") + "".join(
        f",{_escape(name, ',= ')}={_escape(tags[name], ',= ')}" for name in sorted(tags)
    )
    prefix = f"{key} value="
    # repr() is the shortest text that reads back as the same double.
    return "".join(
        f"{prefix}{value!r} {stamp}\n"
        for value, stamp in zip(values.tolist(), timestamps_us.tolist(), strict=True)
    ).encode()


def chart_query(device: str, start_us: int, end_us: int, buckets: int) -> str:
    """InfluxQL for the chart: min and max of ``buckets`` equal spans of [start, end), the
    buckets aligned on ``start`` (InfluxDB aligns them on the epoch unless offset)."""
    interval = math.ceil((end_us - start_us) / buckets)
    return (
        f"SELECT min(value), max(value) FROM {MEASUREMENT} WHERE device = '{device}' "
        f"AND time >= {start_us}u AND time < {end_us}u "
        f"GROUP BY time({interval}u, {start_us % interval}u)"
    )


def raw_query(device: str, start_us: int, end_us: int) -> str:
    """InfluxQL for every reading of a device in [start, end)."""
    return (
        f"SELECT value FROM {MEASUREMENT} WHERE device = '{device}' "
        f"AND time >= {start_us}u AND time < {end_us}u"
    )


def influx_config(root: Path, *, http_port: int, rpc_port: int, compact_now: bool) -> str:
    """``influxd``'s config for the job: everything under ``root``, on its own ports, the
    storage engine at its defaults unless ``compact_now`` (a full compaction of every shard
    1 s after its last write, which the defaults do after four hours)."""
    cold = (
        '  cache-snapshot-write-cold-duration = "1s"\n  compact-full-write-cold-duration = "1s"\n'
    )
    return (
        "reporting-disabled = true\n"
        f'bind-address = "127.0.0.1:{rpc_port}"\n'
        "[meta]\n"
        f'  dir = "{root / "meta"}"\n'
        "[data]\n"
        f'  dir = "{root / "data"}"\n'
        f'  wal-dir = "{root / "wal"}"\n'
        "  query-log-enabled = false\n" + (cold if compact_now else "") + "[monitor]\n"
        "  store-enabled = false\n"
        "[http]\n"
        f'  bind-address = "127.0.0.1:{http_port}"\n'
        "  log-enabled = false\n"
    )


@dataclass
class Influx:
    """A running ``influxd`` of the job's own."""

    root: Path
    process: subprocess.Popen[bytes]
    url: str

    def bytes_of(self, database: str, *, wal: bool = True) -> int:
        """Bytes on disk of a database's files (allocated blocks, as ``du`` counts them: the
        series file's segments are preallocated sparse files): its shards' TSM and index
        files, and its WAL unless ``wal`` is false."""
        bases = [self.root / "data" / database] + ([self.root / "wal" / database] if wal else [])
        return sum(
            path.stat().st_blocks * 512
            for base in bases
            for path in base.rglob("*")
            if path.is_file()
        )

    def shards(self, database: str) -> list[tuple[int, int]]:
        """(TSM files, bytes) of each shard of a database; a file being written counts as a
        second file."""
        return [
            (
                sum(1 for p in shard.iterdir() if p.suffix in (".tsm", ".tmp")),
                sum(p.stat().st_size for p in shard.iterdir() if p.is_file()),
            )
            # data/DB/RP/ID; data/DB/_series holds the series file's partitions.
            for shard in sorted((self.root / "data" / database).glob("*/*"))
            if shard.is_dir() and not shard.parent.name.startswith("_")
        ]


@contextlib.asynccontextmanager
async def influxd(root: Path, *, compact_now: bool = False) -> AsyncIterator[Influx]:
    """Start ``influxd`` on ``root`` with the job's config, wait for /ping; stop it after."""
    http_port, rpc_port = free_port(), free_port()
    config = root / ("influxdb-compact.conf" if compact_now else "influxdb.conf")
    config.write_text(
        influx_config(root, http_port=http_port, rpc_port=rpc_port, compact_now=compact_now)
    )
    log = (root / "influxd.log").open("ab")
    binary = shutil.which("influxd")
    assert binary, MISSING
    process = subprocess.Popen([binary, "-config", str(config)], stdout=log, stderr=log)
    server = Influx(root, process, f"http://127.0.0.1:{http_port}")
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        async with httpx.AsyncClient(base_url=server.url) as client:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"influxd exited ({process.returncode}): see its log")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/ping")).status_code == 204:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError("influxd did not answer /ping in 60 s")
                await asyncio.sleep(0.2)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


async def influx_query(client: httpx.AsyncClient, database: str, statement: str) -> list:
    """The rows (``values``) of a query's only series; raises on an error answer."""
    response = await client.get(
        "/query", params={"db": database, "q": statement, "epoch": "u"}, timeout=120
    )
    response.raise_for_status()
    result = response.json()["results"][0]
    if "error" in result:
        raise RuntimeError(f"InfluxDB: {result['error']}")
    series = result.get("series", [])
    return list(series[0]["values"]) if series else []


async def _influx_drive(plan: LoadPlan, database: str) -> LoadResult:
    """Write the plan's batches to ``/write`` from ``plan.devices`` concurrently, each device
    with up to ``plan.in_flight`` requests open; the bodies are encoded first."""
    bodies = [
        [
            line_protocol(
                MEASUREMENT, {"device": device.device_id}, *batch_arrays(plan, pool, sequence)
            )
            for sequence in range(plan.first_batch, plan.first_batch + plan.batches)
        ]
        for device, pool in ((d, pool_of(plan, i)) for i, d in enumerate(plan.devices))
    ]
    result = LoadResult()
    cpu = time.process_time()
    limits = httpx.Limits(max_connections=len(plan.devices) * plan.in_flight)
    params = {"db": database, "precision": "u"}
    async with httpx.AsyncClient(base_url=plan.address, limits=limits, timeout=300) as client:

        async def send(device_bodies: list[bytes]) -> None:
            for body in device_bodies:
                sent = time.perf_counter()
                response = await client.post("/write", params=params, content=body)
                if response.status_code != 204:
                    result.errors.append(f"{response.status_code}: {response.text[:200]}")
                    continue
                result.latencies_ms.append((time.perf_counter() - sent) * 1000)
                result.total_accepted += plan.batch_size
                result.batches += 1

        begin = time.perf_counter()
        await asyncio.gather(
            *(send(b[k :: plan.in_flight]) for b in bodies for k in range(plan.in_flight))
        )
        result.seconds = time.perf_counter() - begin
    result.readings = result.total_accepted
    result.client_cpu = time.process_time() - cpu
    return result


@dataclass
class Ingest:
    """One system's ingest of one dataset."""

    load: LoadResult
    stored: int
    size: int
    server_cpu: float
    compacted_size: int = 0
    database: str = ""
    note: str = ""  # how each of InfluxDB's runs went
    compaction: str = ""

    @property
    def rate(self) -> float:
        """Readings acknowledged per second, first send to last acknowledgement."""
        return self.load.total_accepted / self.load.seconds if self.load.seconds else 0.0


@dataclass
class Side:
    """Everything one system measured."""

    version: str
    ingests: dict[str, Ingest] = field(default_factory=dict)
    # By query ("chart", "raw"): the run times (ms) and the points answered.
    queries: dict[str, tuple[list[float], int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Workload:
    """The readings every system gets: each dataset's per-device values, the chart's."""

    datasets: dict[str, tuple[np.ndarray, ...]]
    chart_pool: np.ndarray
    chart_name: str
    ingest_start_us: int
    chart_start_us: int

    def plan(self, address: str, devices: tuple[Device, ...], dataset: str) -> LoadPlan:
        """The ingest of ``dataset`` by ``devices``."""
        return LoadPlan(
            address=address,
            devices=devices,
            batch_size=BATCH,
            seconds=0.0,
            warmup=0.0,
            start_us=self.ingest_start_us,
            in_flight=IN_FLIGHT,
            rate_hz=1_000_000 / STEP_US,
            batches=READINGS // BATCH,
            pools=self.datasets[dataset],
        )

    def chart_plan(self, address: str, device: Device) -> LoadPlan:
        """The chart's stream: 1,000,000 readings of one device."""
        return replace(
            self.plan(address, (device,), next(iter(self.datasets))),
            start_us=self.chart_start_us,
            batches=CHART_READINGS // BATCH,
            pools=(self.chart_pool,),
        )

    @property
    def chart_range(self) -> tuple[int, int]:
        """The chart's whole stream, [start, end)."""
        return self.chart_start_us, self.chart_start_us + CHART_READINGS * STEP_US

    @property
    def raw_range(self) -> tuple[int, int]:
        """10,000 readings from the middle of the chart's stream."""
        middle = self.chart_start_us + CHART_READINGS // 2 * STEP_US
        return middle, middle + RAW_POINTS * STEP_US


def workload(nab_root: Path) -> Workload:
    """NAB's series and the simulator's signals per device, and the chart's stream (the
    longest NAB series, repeated), on a grid of one reading a second ending before now."""
    corpus = nab.load_corpus(nab_root)
    series = corpus.series
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    midnight_us = int(today.timestamp() * 1_000_000)
    ingest_start = midnight_us - 2 * DAY_US
    simulated = tuple(
        simulator_pool(
            Device("", "", DEVICE_TYPES[i % len(DEVICE_TYPES)], seed=i),
            rate_hz=1_000_000 / STEP_US,
            start_us=ingest_start,
        )
        for i in range(DEVICES)
    )
    longest = max(series, key=lambda s: s.values.size)
    return Workload(
        datasets={
            "NAB": tuple(series[i % len(series)].values for i in range(DEVICES)),
            "simulator": simulated,
        },
        chart_pool=longest.values,
        chart_name=longest.name,
        ingest_start_us=ingest_start,
        chart_start_us=midnight_us - 14 * DAY_US,
    )


async def _timed_grpc(
    stub: telemetry_pb2_grpc.TelemetryServiceStub,
    request: telemetry_pb2.GetStreamDataRequest,
    token: str,
) -> tuple[list[float], int]:
    metadata = [("authorization", f"Bearer {token}")]
    answer = await stub.GetStreamData(request, metadata=metadata)  # warms caches
    times = []
    for _ in range(QUERY_RUNS):
        began = time.perf_counter()
        answer = await stub.GetStreamData(request, metadata=metadata)
        times.append((time.perf_counter() - began) * 1000)
    return times, len(answer.data)


async def _ours(kind: str, work: Workload) -> Side:
    """Telemetry on ``kind``: each dataset's ingest and storage, then the chart's queries."""
    async with running(kind) as suite:
        side = Side(version=await asyncio.to_thread(_database_version, suite))
        fleet = await make_fleet(suite, len(work.datasets) * DEVICES + 1)
        address = suite.address("telemetry")
        pid = suite.pid("telemetry")
        for number, dataset in enumerate(work.datasets):
            devices = fleet.devices[number * DEVICES : (number + 1) * DEVICES]
            stored, size = await telemetry_storage(suite)
            cpu = cpu_seconds(pid)
            load = await run_elsewhere(work.plan(address, devices, dataset))
            cpu = cpu_seconds(pid) - cpu
            stored_after, size_after = await telemetry_storage(suite)
            side.ingests[dataset] = Ingest(load, stored_after - stored, size_after - size, cpu)
        device = fleet.devices[-1]
        await run_elsewhere(work.chart_plan(address, device))
        await _chart_ours(suite, side, work, fleet.access_token, device.device_id)
    return side


def _database_version(suite: RunningServices) -> str:
    if suite.settings.database_url:
        with psycopg.connect(suite.settings.database_url) as connection:
            row = connection.execute("SHOW server_version").fetchone()
        return f"PostgreSQL {row[0] if row else '?'}"
    return f"SQLite {sqlite3.sqlite_version}"


async def _chart_ours(
    suite: RunningServices, side: Side, work: Workload, token: str, device_id: str
) -> None:
    telemetry = channel(suite.address("telemetry"))
    try:
        stub = telemetry_pb2_grpc.TelemetryServiceStub(telemetry)
        listed = await stub.ListStreams(
            telemetry_pb2.ListStreamsRequest(device_id=device_id),
            metadata=[("authorization", f"Bearer {token}")],
        )
        stream_id = listed.streams[0].stream_id
        for (start, end), points, target in (
            (work.chart_range, MAX_POINTS, "chart"),
            (work.raw_range, RAW_POINTS, "raw"),
        ):
            request = telemetry_pb2.GetStreamDataRequest(
                stream_id=stream_id,
                start=micros_timestamp(start),
                end=micros_timestamp(end),
                max_points=points,
            )
            side.queries[target] = await _timed_grpc(stub, request, token)
    finally:
        await telemetry.close()


def _influx_devices(prefix: str, count: int) -> tuple[Device, ...]:
    return tuple(Device(f"{prefix}{i:04d}", "", "generic", seed=i) for i in range(count))


async def _peer(work: Workload) -> Side:
    """InfluxDB: each dataset's ingest into a database of its own, the chart's stream into
    another; storage after the ingest and after a full compaction; then the queries."""
    version = subprocess.run(
        ["influxd", "version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    side = Side(version=version)
    with tempfile.TemporaryDirectory(prefix="iot-bench-influx-") as tmp:
        root = Path(tmp)
        async with influxd(root) as server, httpx.AsyncClient(base_url=server.url) as client:
            for dataset in work.datasets:
                # InfluxDB writes one WAL per shard: with 4 requests a client open, 400
                # writes of 5,000 points queue and time out (10 s) on a busy machine, so it
                # also gets one request a client, and its better run is its figure.
                runs = []
                for in_flight in PEER_IN_FLIGHT:
                    database = f"{dataset}-{in_flight}"
                    await client.post("/query", params={"q": f'CREATE DATABASE "{database}"'})
                    plan = replace(
                        work.plan(server.url, _influx_devices("dev", DEVICES), dataset),
                        in_flight=in_flight,
                    )
                    cpu = cpu_seconds(server.process.pid)
                    load = await elsewhere(_influx_drive, plan, database)
                    cpu = cpu_seconds(server.process.pid) - cpu
                    rows = await influx_query(
                        client, database, f"SELECT count(value) FROM {MEASUREMENT}"
                    )
                    stored = int(rows[0][1]) if rows else 0
                    runs.append(
                        Ingest(load, stored, server.bytes_of(database), cpu, database=database)
                    )
                best = max(runs, key=lambda run: (not run.load.errors, run.rate))
                best.note = "; ".join(
                    f"{run.database.rpartition('-')[2]} request(s) open a client: "
                    f"{run.rate:,.0f} readings/s"
                    + (f" ({len(run.load.errors)} failed writes)" if run.load.errors else "")
                    for run in runs
                )
                side.ingests[dataset] = best
            await client.post("/query", params={"q": f'CREATE DATABASE "{CHART_DATABASE}"'})
            chart = work.chart_plan(server.url, Device("chart", "", "generic", seed=0))
            await elsewhere(_influx_drive, chart, CHART_DATABASE)
        # A full compaction comes four hours after a shard's last write by default.
        async with influxd(root, compact_now=True) as server:
            began = time.monotonic()
            databases = [*(i.database for i in side.ingests.values()), CHART_DATABASE]
            seen: list[list[list[tuple[int, int]]]] = []
            done = False
            while not done and time.monotonic() - began < COMPACTION_TIMEOUT:
                await asyncio.sleep(2.0)
                seen.append([server.shards(d) for d in databases])
                # Done when every shard is one TSM file and nothing has changed for 6 s (the
                # cache is written out 1 s after the restart, then compacted).
                done = (
                    time.monotonic() - began >= 10
                    and len(seen) >= 4
                    and all(seen[-1] == earlier for earlier in seen[-4:-1])
                    and all(files == 1 for shards in seen[-1] for files, _ in shards)
                )
            waited = time.monotonic() - began
            for ingest in side.ingests.values():
                # The WAL's segments are written out to TSM by now and go at the next snapshot.
                ingest.compacted_size = server.bytes_of(ingest.database, wal=False)
                ingest.compaction = (
                    f"one TSM file a shard {waited:.0f} s after the restart"
                    if done
                    else f"compaction NOT finished after {waited:.0f} s"
                )
            await _chart_peer(server, side, work)
    return side


async def _chart_peer(server: Influx, side: Side, work: Workload) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        for statement, target in (
            (chart_query("chart", *work.chart_range, BUCKETS), "chart"),
            (raw_query("chart", *work.raw_range), "raw"),
        ):
            rows = await influx_query(client, CHART_DATABASE, statement)  # warms caches
            times = []
            for _ in range(QUERY_RUNS):
                began = time.perf_counter()
                rows = await influx_query(client, CHART_DATABASE, statement)
                times.append((time.perf_counter() - began) * 1000)
            # Points as a chart draws them: a min and a max per bucket, or each reading.
            side.queries[target] = times, 2 * len(rows) if target == "chart" else len(rows)


def _quantile(times: list[float], q: float) -> float:
    return float(np.quantile(times, q)) if times else float("nan")


def _figures(label: str, ours: Side, peer: Side | None) -> list[Figure]:
    """Our side on one database against InfluxDB (an empty column when it did not run)."""
    base = f"InfluxDB {peer.version.split()[1]}" if peer else MISSING
    figures = []
    for dataset, ingest in ours.ingests.items():
        theirs = peer.ingests.get(dataset) if peer else None
        errors = ingest.load.errors + (theirs.load.errors if theirs else [])
        figures.append(
            Figure(
                f"ingest, {dataset} readings, {label}: gRPC StreamReadings",
                "readings/s",
                ingest.rate,
                f"{base}: line protocol over HTTP /write" if peer else base,
                theirs.rate if theirs else math.nan,
                f"{DEVICES} devices x {READINGS:,} readings, batches of {BATCH:,}, ours with up "
                f"to {IN_FLIGHT} a device unacknowledged"
                + (f", InfluxDB's best run ({theirs.note})" if theirs else "")
                + f"; stored {ingest.stored:,}"
                + (f" / {theirs.stored:,}" if theirs else "")
                + f"; p50 ack {ingest.load.latency(0.5):.0f} ms"
                + (f" / {theirs.load.latency(0.5):.0f} ms" if theirs else "")
                + f"; server CPU {ingest.server_cpu * 1e6 / max(1, ingest.stored):.2f} µs"
                + (f" / {theirs.server_cpu * 1e6 / max(1, theirs.stored):.2f} µs" if theirs else "")
                + " a reading"
                + (f"; errors: {errors[:3]}" if errors else ""),
            )
        )
        figures.append(
            Figure(
                f"storage, {dataset} readings, {label}",
                "B/reading",
                ingest.size / max(1, ingest.stored),
                f"{base}, TSM after compaction" if peer else base,
                theirs.compacted_size / max(1, theirs.stored) if theirs else math.nan,
                f"{ingest.stored:,} readings in {ingest.size / 1e6:.1f} MB"
                + (
                    f"; InfluxDB right after the ingest (TSM and WAL): "
                    f"{theirs.size / max(1, theirs.stored):.2f} B/reading; {theirs.compaction}"
                    if theirs
                    else ""
                ),
                lower_is_better=True,
            )
        )
    for target, (name, what) in QUERIES.items():
        times, points = ours.queries[target]
        theirs_times, theirs_points = peer.queries[target] if peer else ([], 0)
        for quantile, tag in ((0.5, "median"), (0.99, "p99")):
            figures.append(
                Figure(
                    f"{name}, {label}, GetStreamData over gRPC, {tag}",
                    "ms",
                    _quantile(times, quantile),
                    f"{base}: InfluxQL {what} over HTTP /query (JSON)" if peer else base,
                    _quantile(theirs_times, quantile),
                    f"{tag} of {QUERY_RUNS} after one warm-up; {points:,} points answered"
                    + (f" / {theirs_points:,}" if peer else ""),
                    lower_is_better=True,
                )
            )
    return figures


async def measure() -> JobResult:
    """Our telemetry on SQLite and on PostgreSQL, and InfluxDB, on the same readings."""
    job = JobResult(when=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", options="")
    root = nab_bench.default_root()
    if root is None:
        raise FileNotFoundError(f"nab-dev dataset not found: set ${nab_bench.ENVIRONMENT}")
    work = workload(root)
    peer = None
    if shutil.which("influxd"):
        peer = await _peer(work)
    else:
        print(f"bench: {MISSING}; measuring our side alone", flush=True)
        job.notes.append(f"{MISSING}: no peer column")
    figures = []
    versions = []
    for kind, label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        ours = await _ours(kind, work)
        versions.append(ours.version)
        figures += _figures(label, ours, peer)
    job.sections[INFLUX_TITLE] = figures
    job.notes.append(
        f"InfluxDB side by side: {peer.version if peer else MISSING}; ours on "
        f"{', '.join(versions)}; the chart's stream is NAB's {work.chart_name} repeated; the "
        "ratio is ours ÷ InfluxDB's; the figures after a slash in a note are InfluxDB's"
    )
    return job

"""Telemetry on one database: durable ingest, one reading per message, range queries, storage.

One job per database (``postgresql``, ``sqlite``): auth, devices and
telemetry run as their own processes (:mod:`bench.services`), the load as
another (:mod:`bench.load`), so the telemetry process has a core to itself
on a two-core machine. Every figure has its baseline measured in the same job
on the same readings: the simulator's signals at 1 kHz, rounded to each
sensor's resolution.
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import psycopg
from grpc import aio

from bench import baselines
from bench.fleet import Fleet, make_fleet
from bench.load import LoadPlan, LoadResult, batch_arrays, run_elsewhere, values_pool
from bench.report import Figure, JobResult
from bench.services import RunningServices, cpu_seconds, running
from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc
from iotkit.convert import micros_timestamp
from iotkit.db import open_database
from iotkit.server import channel
from services.telemetry.telemetry import query
from services.telemetry.telemetry.store import TelemetryStore
from services.telemetry.wiring import MIGRATIONS

INGEST_TITLE = {
    "postgresql": "1. Durable ingest into PostgreSQL",
    "sqlite": "2. Durable ingest into SQLite",
}
SINGLE_TITLE = "3. One reading per message"
QUERY_TITLE = "4. Range query over 1,000,000 points"
STORAGE_TITLE = "5. Storage"
DEVICES = 100
BATCH = 1000
WARMUP = 3.0
RATE_HZ = 1000.0
MAX_BASELINE_ROUNDS = 100
"""Rounds of the ingest load the baseline writes again: at most 10,000,000 readings."""
QUERY_BATCHES = 1000
"""Batches of 1,000 readings stored for the range query: 1,000,000 points."""
QUERY_POINTS = 1000
QUERY_RUNS = 7
QUERY_STREAM = 100_000
"""The query stream's id in the plain table (the ingest streams are 0-99)."""
INGEST_TARGET = 1_000_000


def _median_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


async def telemetry_storage(suite: RunningServices) -> tuple[int, int]:
    """Readings stored and the bytes telemetry's tables take, from the database itself."""
    settings = suite.settings
    if settings.database_url:
        with psycopg.connect(settings.database_url) as connection:
            size = connection.execute(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'iot_telemetry' AND c.relkind = 'r'"
            ).fetchone()
            stored = connection.execute(
                "SELECT coalesce(sum(count), 0) FROM iot_telemetry.chunks"
            ).fetchone()
        return int(stored[0] if stored else 0), int(size[0] if size else 0)
    path = settings.data_dir / "telemetry.db"
    lite = sqlite3.connect(path)
    try:
        row = lite.execute("SELECT coalesce(sum(count), 0) FROM chunks").fetchone()
    finally:
        lite.close()
    return int(row[0] if row else 0), baselines.sqlite_size(path)


async def _stream_of(suite: RunningServices, token: str, device_id: str) -> str:
    async with aio.insecure_channel(suite.address("telemetry")) as telemetry_channel:
        stub = telemetry_pb2_grpc.TelemetryServiceStub(telemetry_channel)
        listed = await stub.ListStreams(
            telemetry_pb2.ListStreamsRequest(device_id=device_id),
            metadata=[("authorization", f"Bearer {token}")],
        )
    return listed.streams[0].stream_id


async def _grpc_query(
    suite: RunningServices, token: str, stream_id: str, start: int, end: int
) -> tuple[list[float], telemetry_pb2.SensorDataResponse]:
    request = telemetry_pb2.GetStreamDataRequest(
        stream_id=stream_id,
        start=micros_timestamp(start),
        end=micros_timestamp(end),
        max_points=QUERY_POINTS,
    )
    metadata = [("authorization", f"Bearer {token}")]
    telemetry_channel = channel(suite.address("telemetry"))
    try:
        stub = telemetry_pb2_grpc.TelemetryServiceStub(telemetry_channel)
        answer = await stub.GetStreamData(request, metadata=metadata)  # warms caches
        times = []
        for _ in range(QUERY_RUNS):
            started = time.perf_counter()
            answer = await stub.GetStreamData(request, metadata=metadata)
            times.append(time.perf_counter() - started)
    finally:
        await telemetry_channel.close()
    return times, answer


async def _in_process_query(
    suite: RunningServices, stream_id: str, start: int, end: int
) -> tuple[list[float], list[float], query.Series]:
    """Run times of the in-process query path, and of numpy alone on the same arrays."""
    database = await open_database(
        service="telemetry", settings=suite.settings, tables=MIGRATIONS
    )
    try:
        store = TelemetryStore(database.sessions)
        times = []
        for _ in range(QUERY_RUNS + 1):
            started = time.perf_counter()
            timestamps, values = await query.read_range(
                store, stream_id=stream_id, start=start, end=end
            )
            series = query.series(timestamps, values, max_points=QUERY_POINTS, normalization="none")
            times.append(time.perf_counter() - started)
    finally:
        await database.close()
    in_memory = []
    for _ in range(QUERY_RUNS):
        started = time.perf_counter()
        query.stats_of(values)
        query.min_max_downsample(timestamps, values, QUERY_POINTS)
        in_memory.append(time.perf_counter() - started)
    return times[1:], in_memory, series


async def measure(kind: str, *, seconds: float) -> JobResult:
    """Every figure of telemetry on ``kind`` ("postgresql" or "sqlite")."""
    job = JobResult(when=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", options="")
    sections = job.sections
    label = "PostgreSQL" if kind == "postgresql" else "SQLite"
    async with running(kind) as suite:
        fleet = await make_fleet(suite, DEVICES + 1)
        now_us = time.time_ns() // 1000
        plan = LoadPlan(
            address=suite.address("telemetry"),
            devices=fleet.devices[:DEVICES],
            batch_size=BATCH,
            seconds=seconds,
            warmup=WARMUP,
            # History back-filled faster than real time, so it must start well in the past.
            start_us=now_us - 6 * 3600 * 1_000_000,
            rate_hz=RATE_HZ,
        )
        pid = suite.pid("telemetry")
        cpu = cpu_seconds(pid)
        ingest = await run_elsewhere(plan)
        cpu = cpu_seconds(pid) - cpu
        await asyncio.sleep(1.0)  # the last write groups land
        stored, size = await telemetry_storage(suite)

        rounds = min(ingest.next_batch, MAX_BASELINE_ROUNDS)
        batches = list(baselines.rounds(plan, rounds))
        if kind == "postgresql":
            assert suite.settings.database_url
            url = suite.settings.database_url
            plain = await asyncio.to_thread(baselines.postgres_copy, url, batches)
            plain_name = "psycopg binary COPY into a plain table"
        else:
            plain_path = suite.settings.data_dir / "plain.db"
            plain = await asyncio.to_thread(baselines.sqlite_executemany, plain_path, batches)
            plain_name = "sqlite3 executemany into a plain table"
        del batches
        cores = cpu / (WARMUP + seconds)
        per_reading = cpu * 1e6 / max(1, ingest.total_accepted)
        sections[INGEST_TITLE[kind]] = [
            Figure(
                f"StreamReadings, {DEVICES} device streams, batches of {BATCH:,}",
                "readings/s",
                ingest.rate,
                plain_name,
                plain.rate,
                f"acked after commit; p50 ack {ingest.latency(0.5):.0f} ms, p99 "
                f"{ingest.latency(0.99):.0f} ms; telemetry used {cores:.2f} cores, "
                f"{per_reading:.2f} µs CPU per reading; baseline: {plain.readings:,} of the "
                "same readings, a batch of every stream per commit"
                + (f"; errors: {ingest.errors[:3]}" if ingest.errors else ""),
                target=f"≥ {INGEST_TARGET:,} readings/s and ≥ 1.0x"
                if kind == "postgresql"
                else "≥ 1.0x",
                met=(ingest.rate >= INGEST_TARGET or kind != "postgresql")
                and ingest.rate >= plain.rate,
            )
        ]
        sections.setdefault(STORAGE_TITLE, []).append(
            Figure(
                f"telemetry's tables in {label}, batches of {BATCH:,}",
                "B/reading",
                size / max(1, stored),
                f"plain table with its primary key in {label}",
                plain.bytes_per_reading,
                f"{stored:,} readings in {size / 1e6:.1f} MB, from the database's own size",
                lower_is_better=True,
                target="≤ 4 B/reading",
                met=size / max(1, stored) <= 4,
            )
        )

        single = await _single_readings(plan, ingest, seconds)
        gain = ingest.rate / max(single.batch_rate, 1.0)
        sections[SINGLE_TITLE] = [
            Figure(
                f"one reading per message, {DEVICES} streams, {label}",
                "messages/s",
                single.batch_rate,
                f"batches of {BATCH:,}",
                ingest.rate,
                f"one telemetry process; batching gains {gain:,.0f}x"
                f"; p50 ack {single.latency(0.5):.0f} ms"
                + (f"; errors: {single.errors[:3]}" if single.errors else ""),
                baseline_unit="readings/s",
            )
        ]

        sections[QUERY_TITLE] = await _range_query(kind, suite, fleet)
    return job


async def _single_readings(plan: LoadPlan, ingest: LoadResult, seconds: float) -> LoadResult:
    """The same streams, each message carrying one reading, after the batched ones."""
    period = max(1, round(1_000_000 / plan.rate_hz))
    single = replace(
        plan,
        batch_size=1,
        in_flight=8,
        start_us=plan.start_us + (ingest.next_batch + 1) * plan.batch_size * period,
        first_batch=0,
    )
    return await run_elsewhere(single)


async def _range_query(kind: str, suite: RunningServices, fleet: Fleet) -> list[Figure]:
    """Store 1,000,000 readings in one stream, then chart the whole range several times."""
    label = "PostgreSQL" if kind == "postgresql" else "SQLite"
    device = fleet.devices[DEVICES]
    plan = LoadPlan(
        address=suite.address("telemetry"),
        devices=(device,),
        batch_size=BATCH,
        seconds=0.0,
        warmup=0.0,
        start_us=time.time_ns() // 1000 - 2 * 3600 * 1_000_000,
        rate_hz=RATE_HZ,
        in_flight=8,
        batches=QUERY_BATCHES,
    )
    loaded = await run_elsewhere(plan)
    period = max(1, round(1_000_000 / plan.rate_hz))
    start, end = plan.start_us, plan.start_us + QUERY_BATCHES * BATCH * period
    stream_id = await _stream_of(suite, fleet.access_token, device.device_id)
    grpc_times, answer = await _grpc_query(suite, fleet.access_token, stream_id, start, end)
    local_times, numpy_times, series = await _in_process_query(suite, stream_id, start, end)

    pool = values_pool(device, rate_hz=plan.rate_hz, start_us=plan.start_us)
    parts = [batch_arrays(plan, pool, sequence) for sequence in range(QUERY_BATCHES)]
    rounds = baselines.single_stream_rounds(
        QUERY_STREAM, np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    )
    buckets = QUERY_POINTS // 2  # a min and a max per bucket
    if kind == "postgresql":
        assert suite.settings.database_url
        url = suite.settings.database_url
        await asyncio.to_thread(baselines.postgres_copy, url, rounds, fresh=False)
        plain, sql_times = await asyncio.to_thread(
            baselines.postgres_range_query,
            url,
            stream_id=QUERY_STREAM,
            start=start,
            end=end,
            buckets=buckets,
        )
    else:
        path = suite.settings.data_dir / "plain.db"
        await asyncio.to_thread(baselines.sqlite_executemany, path, rounds, fresh=False)
        plain, sql_times = await asyncio.to_thread(
            baselines.sqlite_range_query,
            path,
            stream_id=QUERY_STREAM,
            start=start,
            end=end,
            buckets=buckets,
        )
    same = answer.stats.count == plain.count == series.stats.count
    check = "" if same else f"; COUNTS DIFFER: {answer.stats.count} vs {plain.count}"
    grpc_ms, local_ms = _median_ms(grpc_times), _median_ms(local_times)
    return [
        Figure(
            f"GetStreamData over gRPC, {label}",
            "ms",
            grpc_ms,
            f"SQL over the plain table in {label}",
            _median_ms(sql_times),
            f"median of {QUERY_RUNS}; {answer.stats.count:,} readings (stored as "
            f"{QUERY_BATCHES:,} batches of {BATCH:,}), stats and {len(answer.data):,} points; "
            f"the SQL answers the same stats and min/max of {buckets} buckets"
            + (f"; load errors: {loaded.errors[:3]}" if loaded.errors else "")
            + check,
            lower_is_better=True,
            target="< 100 ms",
            met=grpc_ms < 100,
        ),
        Figure(
            f"in-process query path (chunks, decode, stats, downsample), {label}",
            "ms",
            local_ms,
            "numpy alone on the same arrays in memory",
            _median_ms(numpy_times),
            f"median of {QUERY_RUNS}; what the servicer calls, without gRPC",
            lower_is_better=True,
            target="< 100 ms",
            met=local_ms < 100,
        ),
    ]

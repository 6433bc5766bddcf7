"""Readings at scale in PostgreSQL: the range query at 100,000,000 readings, by month.

Two schemas of one fresh database hold the same 100 M readings: telemetry's
chunk table as the migrations make it now (partitioned by month of the
chunk's first reading, revision 0002) and as revision 0001 made it (one plain
table), the baseline. 100 streams of 1,000,000 readings each, one every 10 s
(about four months, so five monthly partitions), in chunks of 1,000 readings
encoded by telemetry's own codec and loaded with binary COPY. Measured on
each: the range query of the chart (``query.read_range`` through
``TelemetryStore``: the chunk rows, then decoding) for one stream over a day
and over a week, its plan (EXPLAIN: the index, the months read), and
retention of the oldest month (``DROP`` of its partition against ``DELETE``
of the same rows from the plain table).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import psycopg
from psycopg import sql
from sqlalchemy import create_engine, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from bench.report import Figure, JobResult
from bench.services import POSTGRES_URL, fresh_postgres_database
from iotkit.migrations import upgrade
from services.telemetry.telemetry import query
from services.telemetry.telemetry.partitions import Month
from services.telemetry.telemetry.store import ChunkRow, TelemetryStore
from services.telemetry.telemetry.writer import chunk_of
from services.telemetry.wiring import MIGRATIONS

PARTITION_TITLE = "16. Readings at scale in PostgreSQL: 100,000,000 readings, by month"
STREAMS = 100
READINGS_PER_STREAM = 1_000_000
CHUNK = 1_000
STEP_US = 10_000_000
"""One reading every 10 s: a million readings span 116 days."""
START = datetime(2026, 3, 1, tzinfo=UTC)
RUNS = 20
DAY_US = 86_400_000_000
COLUMNS = ("stream_id", "ts_min", "ts_max", "count", "v_min", "v_max", "v_sum", "data")


@dataclass(frozen=True, slots=True)
class Schema:
    """One of the two copies of the readings: its schema name and how it was made."""

    name: str
    revision: str


def _sync_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql+psycopg").render_as_string(False)


def _migrate(url: str, schema: Schema) -> None:
    engine = create_engine(_sync_url(url), connect_args={"options": f"-csearch_path={schema.name}"})
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema.name}"')
            upgrade(connection, MIGRATIONS, schema=schema.name, target=schema.revision)
    finally:
        engine.dispose()


def _chunks(stream_id: str, seed: int) -> Iterator[tuple[Any, ...]]:
    """A stream's chunk rows: a random walk at a sensor's resolution (0.01)."""
    rng = np.random.default_rng(seed)
    start_us = int(START.timestamp() * 1_000_000)
    values = np.round(20.0 + np.cumsum(rng.normal(0, 0.05, READINGS_PER_STREAM)), 2)
    times = start_us + np.arange(READINGS_PER_STREAM, dtype=np.int64) * STEP_US
    for low in range(0, READINGS_PER_STREAM, CHUNK):
        chunk = chunk_of(stream_id, times[low : low + CHUNK], values[low : low + CHUNK])
        yield tuple(getattr(chunk, name) for name in COLUMNS)


def _load(url: str, schemas: list[Schema], stream_ids: list[str]) -> float:
    """COPY every chunk into each schema; answers the seconds the encoding and COPY took."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as connection:
        for stream_id in stream_ids:
            # As telemetry's writer leaves them: the stream knows its longest chunk.
            connection.execute(
                sql.SQL(
                    "INSERT INTO {}.streams (id, device_id, owner_id, metric_name, device_type, "
                    "sampling_rate, sampling_period_us, retention_days, created_at, "
                    "readings_count, max_chunk_span_us) VALUES "
                    "(%s, %s, 'bench', 'temp', 'temperature', 0, %s, 0, now(), %s, %s)"
                ).format(sql.Identifier(schemas[0].name)),
                (stream_id, stream_id, STEP_US, READINGS_PER_STREAM, (CHUNK - 1) * STEP_US),
            )
        for number, stream_id in enumerate(stream_ids):
            rows = list(_chunks(stream_id, number))
            for schema in schemas:
                copy = sql.SQL("COPY {}.chunks ({}) FROM STDIN (FORMAT BINARY)").format(
                    sql.Identifier(schema.name), sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
                )
                with connection.cursor() as cursor, cursor.copy(copy) as sink:
                    sink.set_types(
                        ["varchar", "int8", "int8", "int4", "float8", "float8", "float8", "bytea"]
                    )
                    for row in rows:
                        sink.write_row(row)
        for schema in schemas:
            connection.execute(sql.SQL("ANALYZE {}.chunks").format(sql.Identifier(schema.name)))
    return time.perf_counter() - started


def _engine(url: str, schema: Schema) -> AsyncEngine:
    return create_async_engine(
        make_url(url).set(drivername="postgresql+psycopg"),
        connect_args={"options": f"-csearch_path={schema.name}"},
    )


class _PlainChunks:
    """The baseline's store: the range query telemetry ran before partitions, on one plain
    table (its scan starts at the stream's first chunk)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def chunks(self, *, stream_id: str, start: int, end: int) -> list[tuple[int, int, bytes]]:
        """(ts_min, ts_max, data) of the chunks overlapping [start, end), oldest first."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(ChunkRow.ts_min, ChunkRow.ts_max, ChunkRow.data)
                .where(
                    ChunkRow.stream_id == stream_id, ChunkRow.ts_max >= start, ChunkRow.ts_min < end
                )
                .order_by(ChunkRow.ts_min, ChunkRow.id)
            )
            return [(int(a), int(b), bytes(c)) for a, b, c in rows]


@asynccontextmanager
async def _store(url: str, schema: Schema) -> AsyncIterator[TelemetryStore]:
    engine = _engine(url, schema)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        if schema.revision == "head":
            yield TelemetryStore(sessions)
        else:
            # read_range asks its store for chunks() alone.
            yield cast(TelemetryStore, _PlainChunks(sessions))
    finally:
        await engine.dispose()


async def _query_ms(store: TelemetryStore, stream_id: str, start: int, end: int) -> float:
    """Median milliseconds of the chart's range read; checks what it answers."""
    times = []
    for _ in range(RUNS + 1):
        began = time.perf_counter()
        stamps, _values = await query.read_range(store, stream_id=stream_id, start=start, end=end)
        times.append(time.perf_counter() - began)
        expected = (end - start) // STEP_US
        assert abs(stamps.size - expected) <= 1, (stamps.size, expected)
    return statistics.median(times[1:]) * 1000


def _plan(url: str, schema: Schema, stream_id: str, start: int, end: int) -> str:
    """The range query telemetry runs, as it ran (EXPLAIN ANALYZE): the scans executed."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema.name)))
        statement = TelemetryStore.range_query(stream_id=stream_id, start=start, end=end)
        compiled = statement.compile(
            dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
        )
        rows = connection.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled}").fetchone()  # type: ignore[arg-type]
    assert rows is not None
    nodes: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        # Months pruned when the query ran (by the stream's longest chunk) never execute.
        if "Relation Name" in node and node.get("Actual Loops", 0) > 0:
            nodes.append(f"{node['Node Type']} on {node['Relation Name']}")
        for child in node.get("Plans", []):
            walk(child)

    walk(rows[0][0]["Plan"])
    return ", ".join(nodes)


def _retention(url: str, schemas: list[Schema]) -> tuple[float, float, int]:
    """Seconds to drop the oldest month as a partition, and to delete the same rows from
    the plain table; and how many chunk rows that month held."""
    month = Month.of(START)
    low, high = month.start_us, month.next().start_us
    with psycopg.connect(url, autocommit=True) as connection:
        partitioned, plain = schemas
        count = connection.execute(
            sql.SQL("SELECT count(*) FROM {}.chunks WHERE ts_min >= %s AND ts_min < %s").format(
                sql.Identifier(plain.name)
            ),
            (low, high),
        ).fetchone()
        began = time.perf_counter()
        connection.execute(
            sql.SQL("DROP TABLE {}.{}").format(
                sql.Identifier(partitioned.name), sql.Identifier(month.table)
            )
        )
        dropped = time.perf_counter() - began
        began = time.perf_counter()
        connection.execute(
            sql.SQL("DELETE FROM {}.chunks WHERE ts_min >= %s AND ts_min < %s").format(
                sql.Identifier(plain.name)
            ),
            (low, high),
        )
        deleted = time.perf_counter() - began
    return dropped, deleted, int(count[0]) if count else 0


async def measure() -> JobResult:
    """Load 100 M readings twice, time the range query and retention on each table."""
    job = JobResult(when=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", options="")
    tag = uuid.uuid4().hex[:8]
    schemas = [Schema(f"bench_by_month_{tag}", "head"), Schema(f"bench_plain_{tag}", "0001")]
    stream_ids = [str(uuid.uuid4()) for _ in range(STREAMS)]
    with fresh_postgres_database(POSTGRES_URL) as url:
        for schema in schemas:
            await asyncio.to_thread(_migrate, url, schema)
        # The months are made as telemetry makes them when its first write meets them.
        start_us = int(START.timestamp() * 1_000_000)
        async with _store(url, schemas[0]) as store:
            await store.partitions.ensure(
                range(start_us, start_us + READINGS_PER_STREAM * STEP_US, DAY_US)
            )
        load_s = await asyncio.to_thread(_load, url, schemas, stream_ids)
        target = stream_ids[STREAMS // 2]
        # A day and a week in the fourth month of the stream's history.
        day_start = int(datetime(2026, 6, 10, tzinfo=UTC).timestamp() * 1_000_000)
        figures = []
        for label, span in (("a day", DAY_US), ("a week", 7 * DAY_US)):
            results = {}
            for schema in schemas:
                async with _store(url, schema) as store:
                    results[schema.revision] = await _query_ms(
                        store, target, day_start, day_start + span
                    )
            plan = await asyncio.to_thread(
                _plan, url, schemas[0], target, day_start, day_start + span
            )
            figures.append(
                Figure(
                    f"range query of one stream over {label}, 100 M readings in the table",
                    "ms",
                    results["head"],
                    "the query before partitions, on one plain table (revision 0001), same rows",
                    results["0001"],
                    f"median of {RUNS}; {span // STEP_US:,} readings answered; "
                    f"plan: {plan}; load of {STREAMS * READINGS_PER_STREAM:,} readings "
                    f"({STREAMS * READINGS_PER_STREAM // CHUNK:,} chunk rows per table) took "
                    f"{load_s:.0f} s",
                    lower_is_better=True,
                    target="an index scan of the months in range",
                    met="Index" in plan and "Seq Scan" not in plan,
                )
            )
        dropped, deleted, rows = await asyncio.to_thread(_retention, url, schemas)
        figures.append(
            Figure(
                "retention: the oldest month dropped as a partition",
                "ms",
                dropped * 1000,
                "DELETE of the same chunk rows from the plain table",
                deleted * 1000,
                f"{rows:,} chunk rows ({rows * CHUNK:,} readings)",
                lower_is_better=True,
            )
        )
    job.sections[PARTITION_TITLE] = figures
    return job

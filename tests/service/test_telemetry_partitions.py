"""Telemetry's chunk table partitioned by month on PostgreSQL (migration 0002, ``partitions``).

Writes make the month they need, the periodic job makes months ahead, a
month made late takes its rows out of the default partition, the range query
reads only the months it spans through an index, and retention drops a month
whole only when every stream in it allows. On SQLite the same store keeps one
table and the same calls do nothing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg import sql

from services.telemetry.jobs import enforce_retention
from services.telemetry.telemetry import partitions
from services.telemetry.telemetry.partitions import DEFAULT, Month
from services.telemetry.telemetry.store import StreamAdvance, TelemetryStore
from services.telemetry.telemetry.values import Stream
from services.telemetry.telemetry.writer import chunk_of
from tests.conftest import Backend, open_backend
from tests.support import telemetry_stream

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAY_US = 86_400_000_000


@pytest.fixture
async def postgres(tmp_path: Path) -> AsyncIterator[Backend]:
    """A PostgreSQL backend: partitions exist only there."""
    with open_backend("postgresql", tmp_path) as backend:
        yield backend


def _us(year: int, month: int, day: int = 1) -> int:
    return int(datetime(year, month, day, tzinfo=UTC).timestamp() * 1_000_000)


async def _write(store: TelemetryStore, stream: Stream, start_us: int, count: int = 100) -> None:
    timestamps = start_us + np.arange(count, dtype=np.int64) * 1_000_000
    values = np.arange(count, dtype=np.float64)
    await store.write_group(
        chunks=[chunk_of(stream.id, timestamps, values)],
        advances=[StreamAdvance(stream.id, int(timestamps[-1]), float(values[-1]), count)],
    )


async def _partitions(backend: Backend) -> dict[str, int]:
    """Each partition of ``chunks`` with its rows."""
    names = await backend.sql(
        "telemetry",
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass('chunks')",
    )
    counts = {}
    for (name,) in names:
        rows = await backend.sql("telemetry", f"SELECT count(*) FROM {name}")
        counts[str(name)] = int(str(rows[0][0]))
    return counts


async def test_writes_make_their_months_and_reads_find_them(postgres: Backend) -> None:
    database = await postgres.open("telemetry")
    store = TelemetryStore(database.sessions)
    try:
        stream = await store.add_stream(stream=telemetry_stream())
        for month in (10, 11, 12):
            await _write(store, stream, _us(2026, month, 15))
        # A clock that was never set (1970), and times no calendar holds: no month of their own.
        for start in (5_000_000, -(2**60), 2**62):
            await _write(store, stream, start)
        assert await _partitions(postgres) == {
            "chunks_p202610": 1,
            "chunks_p202611": 1,
            "chunks_p202612": 1,
            DEFAULT: 3,
        }
        found = await store.chunks(stream_id=stream.id, start=_us(2026, 11), end=_us(2026, 12))
        assert len(found) == 1 and found[0][0] == _us(2026, 11, 15)
        assert len(await store.chunks_after(position=0, limit=10)) == 6
    finally:
        await database.close()


async def test_the_range_query_reads_only_its_months_by_index(postgres: Backend) -> None:
    database = await postgres.open("telemetry")
    store = TelemetryStore(database.sessions)
    try:
        stream = await store.add_stream(stream=telemetry_stream())
        for month in range(1, 13):
            await _write(store, stream, _us(2026, month, 10))
        await postgres.sql("telemetry", "ANALYZE chunks")
        plan = await postgres.sql(
            "telemetry",
            "EXPLAIN (FORMAT JSON) SELECT ts_min, ts_max, data FROM chunks "
            "WHERE stream_id = ? AND ts_max >= ? AND ts_min < ? ORDER BY ts_min, id",
            (stream.id, _us(2026, 11, 20), _us(2026, 12, 1)),
        )
        text = json.dumps(plan[0][0])
        scanned = {p for p in (await _partitions(postgres)) if f'"{p}"' in text}
        # Months starting after the range are pruned at plan time.
        assert "chunks_p202612" not in scanned and "chunks_p202611" in scanned
        # Each month has the (stream, start, end) index (a month of one row is read whole
        # all the same; bench/partitions.py shows the index scan at 100 M readings).
        # This schema's indexes first, behind a fence: the planner may test the definition
        # before the schema, and another test's index dropped meanwhile cannot be read
        # ("could not open relation with OID ...").
        indexed = await postgres.sql(
            "telemetry",
            "WITH mine AS MATERIALIZED (SELECT tablename, indexname FROM pg_indexes "
            "WHERE schemaname = current_schema()) SELECT tablename FROM mine "
            "WHERE pg_get_indexdef((quote_ident(current_schema()) || '.' || "
            "quote_ident(indexname))::regclass) LIKE ?",
            ("%(stream_id, ts_min, ts_max)",),
        )
        assert set(await _partitions(postgres)) <= {str(name) for (name,) in indexed}
    finally:
        await database.close()


async def test_a_month_made_late_takes_its_rows_from_the_default(postgres: Backend) -> None:
    database = await postgres.open("telemetry")
    store = TelemetryStore(database.sessions)
    try:
        stream = await store.add_stream(stream=telemetry_stream())
        # Two years ahead of the real clock: past the window, so into the default partition.
        future = Month.of(datetime.now(UTC)).plus(24)
        await _write(store, stream, future.start_us + DAY_US)
        await _write(store, stream, future.next().start_us + DAY_US)
        assert (await _partitions(postgres)).get(DEFAULT) == 2
        # Time passes: the month comes into the window and is made ahead.
        later = datetime.fromtimestamp(future.start_us / 1e6, UTC)
        await store.partitions.make_ahead(now=later)
        counts = await _partitions(postgres)
        assert counts[future.table] == 1 and counts[future.next().table] == 1
        assert counts[DEFAULT] == 0
        assert len(await store.chunks_after(position=0, limit=10)) == 2
    finally:
        await database.close()


async def test_retention_drops_a_month_only_when_every_stream_allows(
    postgres: Backend,
) -> None:
    database = await postgres.open("telemetry")
    store = TelemetryStore(database.sessions)
    try:
        short = await store.add_stream(stream=telemetry_stream(retention_days=30))
        kept = await store.add_stream(stream=telemetry_stream(retention_days=0))
        await _write(store, short, _us(2026, 8, 5))
        await _write(store, short, _us(2026, 9, 5))
        await _write(store, kept, _us(2026, 9, 6))
        await _write(store, short, _us(2026, 11, 20))

        dropped = await store.partitions.drop_expired(now=NOW)
        # August held only the 30-day stream; September also a stream kept for ever;
        # November ended less than 30 days ago (it has not ended at all).
        assert dropped == ["chunks_p202608"]
        counts = await _partitions(postgres)
        assert "chunks_p202608" not in counts and counts["chunks_p202609"] == 2
        # The ordinary retention still takes the expired chunk out of the held month.
        assert await enforce_retention(store, now=NOW) == 1
        assert (await _partitions(postgres))["chunks_p202609"] == 1
        # A month dropped is made again if a late reading needs it.
        await _write(store, short, _us(2026, 8, 7))
        assert (await _partitions(postgres))["chunks_p202608"] == 1
    finally:
        await database.close()


async def test_on_sqlite_the_partition_calls_do_nothing(tmp_path: Path) -> None:
    with open_backend("sqlite", tmp_path) as backend:
        database = await backend.open("telemetry")
        store = TelemetryStore(database.sessions)
        try:
            stream = await store.add_stream(stream=telemetry_stream(retention_days=1))
            await _write(store, stream, _us(2026, 1, 5))
            await store.partitions.make_ahead(now=NOW)
            assert await store.partitions.months() == []
            assert await store.partitions.drop_expired(now=NOW) == []
            assert await enforce_retention(store, now=NOW) == 1
        finally:
            await database.close()


async def test_a_chunk_that_starts_long_before_the_range_is_still_read(backend: Backend) -> None:
    """The range query bounds its scan by the stream's longest chunk: a slow stream's chunk
    spanning seven weeks, or a merged one, is found from a day inside it."""
    database = await backend.open("telemetry")
    store = TelemetryStore(database.sessions)
    try:
        slow = await store.add_stream(stream=telemetry_stream())
        stamps = np.array([_us(2026, 1, 1), _us(2026, 2, 20)], dtype=np.int64)
        await store.write_group(
            chunks=[chunk_of(slow.id, stamps, np.array([1.0, 2.0]))], advances=[]
        )
        await _write(store, slow, _us(2026, 3, 1))
        found = await store.chunks(stream_id=slow.id, start=_us(2026, 2, 10), end=_us(2026, 2, 21))
        assert [chunk[0] for chunk in found] == [_us(2026, 1, 1)]

        merged = await store.add_stream(stream=telemetry_stream())
        await _write(store, merged, _us(2026, 5, 1))
        await _write(store, merged, _us(2026, 5, 20))
        rows = await store.small_chunks(stream_ids=[merged.id], below=1_000, since=0)
        ids = [row[0] for row in rows]
        both = np.concatenate(
            [_us(2026, 5, day) + np.arange(100, dtype=np.int64) * 1_000_000 for day in (1, 20)]
        )
        assert await store.merge_chunks(
            merges=[(ids, chunk_of(merged.id, both, np.zeros(both.size)))]
        )
        found = await store.chunks(
            stream_id=merged.id, start=_us(2026, 5, 20), end=_us(2026, 5, 21)
        )
        assert len(found) == 1 and found[0][0] == _us(2026, 5, 1)
        assert await store.chunk_spans(stream_id=merged.id, after=_us(2026, 5, 19), limit=5) == [
            (_us(2026, 5, 1), int(both[-1]), 200)
        ]
    finally:
        await database.close()


async def test_a_month_that_cannot_be_made_now_waits_in_the_default(
    postgres: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Making a month locks ``chunks`` whole; while another transaction keeps it from
    that, the write does not wait on it (nor make every reader queue behind it): its rows
    go to the default partition, and move into the month once it can be made."""
    monkeypatch.setattr(partitions, "RETRY_SECONDS", 0.0)
    database = await postgres.open("telemetry")
    store = TelemetryStore(database.sessions)
    assert postgres.settings.database_url
    try:
        stream = await store.add_stream(stream=telemetry_stream())
        with psycopg.connect(postgres.settings.database_url) as holder:
            holder.execute(
                sql.SQL("SET search_path TO {}").format(
                    sql.Identifier(postgres.schema("telemetry") or "")
                )
            )
            holder.execute("LOCK TABLE chunks IN ACCESS SHARE MODE")  # a long report, say
            await _write(store, stream, _us(2026, 10, 5))
            assert await _partitions(postgres) == {DEFAULT: 1}
            holder.rollback()
        await _write(store, stream, _us(2026, 10, 6))
        assert await _partitions(postgres) == {"chunks_p202610": 2, DEFAULT: 0}
    finally:
        await database.close()

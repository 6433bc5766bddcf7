"""Baselines: the same readings written the plain way, one row per reading.

A (stream_id, ts, value) table with a primary key on (stream_id, ts), fed
with the very readings the ingest benchmark sent, in the order they were
sent: by a binary ``COPY`` (psycopg) into PostgreSQL, and by ``executemany``
(the standard ``sqlite3`` module) into SQLite with telemetry's own pragmas
(WAL, and ``iotkit.db.SQLITE_SYNCHRONOUS``: FULL, every commit fsynced, as
telemetry's acknowledgements need). Each commit holds one round of every stream's
batch, the grouping telemetry's writer gets. The binary COPY data is built
with numpy, the fastest a Python client can feed PostgreSQL.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import psycopg

from bench.load import LoadPlan, batch_arrays, values_pool
from iotkit.db import SQLITE_SYNCHRONOUS

Int64s = npt.NDArray[np.int64]
Float64s = npt.NDArray[np.float64]

PLAIN_TABLE = "plain_readings"
RANGE_RUNS = 7
"""Timed runs of a range query (after one untimed warm-up run)."""
_COPY_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("len_id", ">i4"),
        ("stream_id", ">i4"),
        ("len_ts", ">i4"),
        ("ts", ">i8"),
        ("len_value", ">i4"),
        ("value", ">f8"),
    ]
)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)


@dataclass(frozen=True, slots=True)
class Round:
    """One batch of every stream, in stream order: what one commit holds."""

    stream_ids: npt.NDArray[np.int32]
    timestamps: Int64s
    values: Float64s


@dataclass(frozen=True, slots=True)
class BaselineResult:
    """How fast the plain table took the readings, and how big it is."""

    readings: int
    seconds: float
    size_bytes: int

    @property
    def rate(self) -> float:
        """Readings per second."""
        return self.readings / self.seconds if self.seconds else 0.0

    @property
    def bytes_per_reading(self) -> float:
        """Table (with its index) size per reading."""
        return self.size_bytes / self.readings if self.readings else 0.0


def rounds(plan: LoadPlan, count: int) -> Iterator[Round]:
    """The first ``count`` rounds of the readings the load of ``plan`` sends."""
    pools = [values_pool(d, rate_hz=plan.rate_hz, start_us=plan.start_us) for d in plan.devices]
    size = plan.batch_size
    for sequence in range(plan.first_batch, plan.first_batch + count):
        parts = [batch_arrays(plan, pool, sequence) for pool in pools]
        yield Round(
            np.repeat(np.arange(len(pools), dtype=np.int32), size),
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
        )


def copy_payload(batch: Round) -> bytes:
    """A round as PostgreSQL's binary COPY format."""
    rows = np.empty(batch.timestamps.size, dtype=_COPY_ROW)
    rows["fields"] = 3
    rows["len_id"] = 4
    rows["stream_id"] = batch.stream_ids
    rows["len_ts"] = 8
    rows["ts"] = batch.timestamps
    rows["len_value"] = 8
    rows["value"] = batch.values
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER


def single_stream_rounds(
    stream_id: int, timestamps: Int64s, values: Float64s, per_round: int = 100_000
) -> list[Round]:
    """One stream's readings as rounds of ``per_round`` readings."""
    return [
        Round(
            np.full(min(per_round, timestamps.size - at), stream_id, dtype=np.int32),
            timestamps[at : at + per_round],
            values[at : at + per_round],
        )
        for at in range(0, timestamps.size, per_round)
    ]


def postgres_copy(url: str, batches: list[Round], *, fresh: bool = True) -> BaselineResult:
    """COPY every round into the plain table in database ``url``, one commit per round.

    ``fresh`` starts with an empty table; otherwise the rows are added.
    """
    with psycopg.connect(url) as connection:
        if fresh:
            connection.execute(f"DROP TABLE IF EXISTS {PLAIN_TABLE}")
            connection.execute(
                f"CREATE TABLE {PLAIN_TABLE} (stream_id integer NOT NULL, ts bigint NOT NULL, "
                "value double precision NOT NULL, PRIMARY KEY (stream_id, ts))"
            )
            connection.commit()
        readings = 0
        started = time.perf_counter()
        for batch in batches:
            with (
                connection.cursor() as cursor,
                cursor.copy(
                    f"COPY {PLAIN_TABLE} (stream_id, ts, value) FROM STDIN WITH (FORMAT BINARY)"
                ) as copy,
            ):
                copy.write(copy_payload(batch))
            connection.commit()
            readings += int(batch.timestamps.size)
        seconds = time.perf_counter() - started
        row = connection.execute("SELECT pg_total_relation_size(%s)", (PLAIN_TABLE,)).fetchone()
    return BaselineResult(readings, seconds, int(row[0]) if row else 0)


def sqlite_executemany(path: Path, batches: list[Round], *, fresh: bool = True) -> BaselineResult:
    """``executemany`` every round into the plain table in SQLite file ``path``."""
    if fresh:
        path.unlink(missing_ok=True)
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        # Telemetry's own durability, so that both sides pay the same fsync per commit.
        connection.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {PLAIN_TABLE} (stream_id INTEGER NOT NULL, "
            "ts INTEGER NOT NULL, value REAL NOT NULL, PRIMARY KEY (stream_id, ts))"
        )
        connection.commit()
        readings = 0
        started = time.perf_counter()
        for batch in batches:
            connection.executemany(
                f"INSERT INTO {PLAIN_TABLE} (stream_id, ts, value) VALUES (?, ?, ?)",
                zip(
                    batch.stream_ids.tolist(),
                    batch.timestamps.tolist(),
                    batch.values.tolist(),
                    strict=True,
                ),
            )
            connection.commit()
            readings += int(batch.timestamps.size)
        seconds = time.perf_counter() - started
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    return BaselineResult(readings, seconds, sqlite_size(path))


def sqlite_size(path: Path) -> int:
    """Bytes a SQLite database takes: its pages, after folding the WAL back in."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (pages,) = connection.execute("PRAGMA page_count").fetchone()
        (page_size,) = connection.execute("PRAGMA page_size").fetchone()
        (free,) = connection.execute("PRAGMA freelist_count").fetchone()
    finally:
        connection.close()
    return int((pages - free) * page_size)


@dataclass(frozen=True, slots=True)
class RangeAnswer:
    """What the plain-table query answered: statistics and (bucket, min, max) rows."""

    count: int
    minimum: float
    maximum: float
    mean: float
    stddev: float
    first: float
    last: float
    buckets: int


def _range_sql(placeholder: str, *, stddev: bool) -> tuple[str, str, str, str]:
    where = f"stream_id = {placeholder} AND ts >= {placeholder} AND ts < {placeholder}"
    spread = "stddev_pop(value)" if stddev else "avg(value * value)"
    return (
        f"SELECT count(*), min(value), max(value), avg(value), {spread} "
        f"FROM {PLAIN_TABLE} WHERE {where}",
        f"SELECT value FROM {PLAIN_TABLE} WHERE {where} ORDER BY ts LIMIT 1",
        f"SELECT value FROM {PLAIN_TABLE} WHERE {where} ORDER BY ts DESC LIMIT 1",
        # The chart's points: min and max of equal time buckets, as telemetry answers them.
        f"SELECT (ts - {placeholder}) / {placeholder} AS bucket, min(value), max(value) "
        f"FROM {PLAIN_TABLE} WHERE {where} GROUP BY bucket ORDER BY bucket",
    )


def postgres_range_query(
    url: str, *, stream_id: int, start: int, end: int, buckets: int
) -> tuple[RangeAnswer, list[float]]:
    """Stats and min/max buckets of a range from the plain table; answers the run times."""
    stats_sql, first_sql, last_sql, buckets_sql = _range_sql("%s", stddev=True)
    width = max(1, -(-(end - start) // buckets))
    key = (stream_id, start, end)
    times = []
    with psycopg.connect(url) as connection:
        for _ in range(RANGE_RUNS + 1):  # the first run warms the cache and is not counted
            started = time.perf_counter()
            stats = connection.execute(stats_sql, key).fetchone()
            first = connection.execute(first_sql, key).fetchone()
            last = connection.execute(last_sql, key).fetchone()
            rows = connection.execute(buckets_sql, (start, width, *key)).fetchall()
            times.append(time.perf_counter() - started)
    assert stats and first and last
    answer = RangeAnswer(
        int(stats[0]),
        stats[1],
        stats[2],
        float(stats[3]),
        float(stats[4]),
        first[0],
        last[0],
        len(rows),
    )
    return answer, times[1:]


def sqlite_range_query(
    path: Path, *, stream_id: int, start: int, end: int, buckets: int
) -> tuple[RangeAnswer, list[float]]:
    """The same as :func:`postgres_range_query` over the SQLite plain table."""
    stats_sql, first_sql, last_sql, buckets_sql = _range_sql("?", stddev=False)
    width = max(1, -(-(end - start) // buckets))
    key = (stream_id, start, end)
    times = []
    connection = sqlite3.connect(path)
    try:
        for _ in range(RANGE_RUNS + 1):
            started = time.perf_counter()
            stats = connection.execute(stats_sql, key).fetchone()
            first = connection.execute(first_sql, key).fetchone()
            last = connection.execute(last_sql, key).fetchone()
            rows = connection.execute(buckets_sql, (start, width, *key)).fetchall()
            # SQLite has no stddev: the population variance from the mean of squares.
            stddev = math.sqrt(max(0.0, stats[4] - stats[3] ** 2))
            times.append(time.perf_counter() - started)
    finally:
        connection.close()
    answer = RangeAnswer(
        int(stats[0]), stats[1], stats[2], float(stats[3]), stddev, first[0], last[0], len(rows)
    )
    return answer, times[1:]

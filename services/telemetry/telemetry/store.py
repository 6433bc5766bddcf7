"""Telemetry's tables and queries (SQLAlchemy 2, async).

Queries answer the domain values of ``values.py`` (a stream is a
:class:`Stream`, never a row) and writes take them.

Readings are stored as compressed columnar chunks (see ``codec``), one row
per stream per write group, so the database cost is per batch, not per
reading. Each chunk row carries its time span and value summary so that
range queries read only the chunks they need.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Float,
    Index,
    Integer,
    LargeBinary,
    Select,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from iotkit.listing import fetch_page
from iotkit.notices import NoticeChannel
from iotkit.sqltypes import SEQUENCE, UtcDateTime
from services.telemetry.forwarder import StoredChunk
from services.telemetry.telemetry.partitions import ChunkPartitions
from services.telemetry.telemetry.sampling import period_of_rate
from services.telemetry.telemetry.values import Stream


class Base(DeclarativeBase):
    """Declarative base of telemetry's tables."""


class StreamRow(Base):
    """A sensor stream: one metric of one device."""

    __tablename__ = "streams"
    __table_args__ = (UniqueConstraint("device_id", "metric_name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(36), index=True)
    owner_id: Mapped[str] = mapped_column(String(36))
    metric_name: Mapped[str] = mapped_column(String(64))
    # The device's type when the stream was created: analytics takes physical bounds from it.
    device_type: Mapped[str] = mapped_column(String(16), default="")
    sampling_rate: Mapped[int] = mapped_column(Integer, default=0)
    # Added after streams first shipped: a row from before has 0 here (the server default
    # that filled it) and its period is then its rate's.
    sampling_period_us: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    retention_days: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_ts: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    readings_count: Mapped[int] = mapped_column(BigInteger, default=0)
    # The longest time any of its chunks spans: a chunk overlapping [start, end) starts at
    # start - this or later, which bounds the range query's index scan (and the months it
    # reads on PostgreSQL) by the range, not by the stream's whole history.
    max_chunk_span_us: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class ChunkRow(Base):
    """A compressed run of one stream's readings with its span and summary."""

    __tablename__ = "chunks"
    __table_args__ = (
        Index("ix_chunks_stream_span", "stream_id", "ts_min", "ts_max"),
        # Ids are the forwarder's positions, so one is never used twice: without
        # AUTOINCREMENT SQLite hands out the highest id again once its chunk is deleted
        # (a device purged), below the cursor, and that chunk would never be analysed.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(SEQUENCE, primary_key=True, autoincrement=True)
    stream_id: Mapped[str] = mapped_column(String(36))
    ts_min: Mapped[int] = mapped_column(BigInteger)
    ts_max: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(Integer)
    v_min: Mapped[float] = mapped_column(Float)
    v_max: Mapped[float] = mapped_column(Float)
    v_sum: Mapped[float] = mapped_column(Float)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class CursorRow(Base):
    """A durable position in something telemetry follows (the device event log)."""

    __tablename__ = "cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)


@dataclass(frozen=True, slots=True)
class NewChunk:
    """A chunk ready to insert."""

    stream_id: str
    ts_min: int
    ts_max: int
    count: int
    v_min: float
    v_max: float
    v_sum: float
    data: bytes


@dataclass(frozen=True, slots=True)
class StreamAdvance:
    """What a write group adds to a stream."""

    stream_id: str
    last_ts: int
    last_value: float
    added: int


_CHUNKS = cast(Table, ChunkRow.__table__)
_NO_END = 2**63 - 1
_FAR = 2**62
_STREAMS = cast(Table, StreamRow.__table__)
# Later readings only move a stream's latest value forward (late data may arrive in any order).
_NEWER = or_(_STREAMS.c.last_ts.is_(None), _STREAMS.c.last_ts < bindparam("b_ts"))
_WIDER = case(
    (_STREAMS.c.max_chunk_span_us < bindparam("b_span"), bindparam("b_span")),
    else_=_STREAMS.c.max_chunk_span_us,
)
_ADVANCE = (
    update(_STREAMS)
    .where(_STREAMS.c.id == bindparam("b_id"))
    .values(
        readings_count=_STREAMS.c.readings_count + bindparam("b_added"),
        last_ts=case((_NEWER, bindparam("b_ts")), else_=_STREAMS.c.last_ts),
        last_value=case((_NEWER, bindparam("b_value")), else_=_STREAMS.c.last_value),
        max_chunk_span_us=_WIDER,
    )
)
_WIDEN = update(_STREAMS).where(_STREAMS.c.id == bindparam("b_id")).values(max_chunk_span_us=_WIDER)


def _spans(chunks: Sequence[NewChunk]) -> dict[str, int]:
    """The longest span of each stream's chunks among ``chunks``."""
    spans: dict[str, int] = {}
    for chunk in chunks:
        spans[chunk.stream_id] = max(spans.get(chunk.stream_id, 0), chunk.ts_max - chunk.ts_min)
    return spans


def _overlapping(stream_id: str, start: int, end: int) -> list[Any]:
    """Conditions for a stream's chunks overlapping [start, end): the lower bound on the
    start comes from the stream's longest chunk, so the scan is as long as the range."""
    longest = select(StreamRow.max_chunk_span_us).where(StreamRow.id == stream_id).scalar_subquery()
    # Any int64 may be asked for; stored readings are from 2000 on, and start - longest
    # must not overflow the database's BIGINT.
    start = min(max(start, -_FAR), _FAR)
    return [
        ChunkRow.stream_id == stream_id,
        ChunkRow.ts_min >= start - longest,
        ChunkRow.ts_min < end,
        ChunkRow.ts_max >= start,
    ]


def _period_us(period_us: int | None, rate: int | None) -> int:
    """A stream's expected interval; a row from before the column has only its rate."""
    return int(period_us or 0) or period_of_rate(int(rate or 0))


def _stream(row: StreamRow) -> Stream:
    """A stream row as its domain value."""
    stream = Stream(**{field.name: getattr(row, field.name) for field in fields(Stream)})
    return replace(stream, sampling_period_us=_period_us(row.sampling_period_us, row.sampling_rate))


def _fields(stream: Stream) -> dict[str, Any]:
    """A stream's fields by name (its row's columns), for a new row."""
    return {field.name: getattr(stream, field.name) for field in fields(stream)}


class _Changed(Exception):
    """Rolls back a chunk swap that found its chunks changed."""


def _chunk_row(chunk: NewChunk) -> dict[str, Any]:
    return {
        "stream_id": chunk.stream_id,
        "ts_min": chunk.ts_min,
        "ts_max": chunk.ts_max,
        "count": chunk.count,
        "v_min": chunk.v_min,
        "v_max": chunk.v_max,
        "v_sum": chunk.v_sum,
        "data": chunk.data,
    }


async def _lock_positions(session: AsyncSession) -> None:
    """Make chunk ids commit in id order, whatever the number of writers.

    The analytics forwarder's cursor means "every chunk up to P", which holds
    only if no chunk commits below a position already read. With several
    telemetry replicas on one PostgreSQL, a writer that drew id 101 could
    commit after another's 102 was read. So a writer draws its ids only while
    holding a transaction-level advisory lock (one per schema), which is
    released after its commit is visible: ids drawn later are higher and
    commit later, and a reader that sees an id sees every lower one that will
    ever commit. SQLite needs nothing: its one writer at a time holds the
    database lock from the first write to the commit.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.chunks'))")
        )


class TelemetryStore:
    """Queries over telemetry's tables."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self.partitions = ChunkPartitions(sessions)
        """The monthly partitions of the chunk table (PostgreSQL)."""
        self.notices: NoticeChannel | None = None
        """Where each write group tells other replicas which streams it wrote (PostgreSQL
        notices, ``iotkit.notices``); None tells no one."""

    async def stream(self, *, stream_id: str) -> Stream | None:
        """A stream by id."""
        async with self._sessions() as session:
            row = await session.get(StreamRow, stream_id)
            return None if row is None else _stream(row)

    async def stream_of(self, *, device_id: str, metric_name: str) -> Stream | None:
        """The stream of one metric of one device."""
        async with self._sessions() as session:
            row = await session.scalar(
                select(StreamRow).where(
                    StreamRow.device_id == device_id, StreamRow.metric_name == metric_name
                )
            )
            return None if row is None else _stream(row)

    async def add_stream(self, *, stream: Stream) -> Stream:
        """Insert a stream, or answer the one a concurrent writer created first."""
        try:
            async with self._sessions.begin() as session:
                session.add(StreamRow(**_fields(stream)))
            return stream
        except IntegrityError:
            existing = await self.stream_of(
                device_id=stream.device_id, metric_name=stream.metric_name
            )
            if existing is None:
                raise
            return existing

    async def count_streams(self, *, device_id: str) -> int:
        """How many streams a device has."""
        async with self._sessions() as session:
            found = await session.scalar(
                select(func.count()).select_from(StreamRow).where(StreamRow.device_id == device_id)
            )
            return int(found or 0)

    async def stream_page(
        self, *, device_id: str, offset: int, limit: int
    ) -> tuple[list[Stream], int]:
        """A page of a device's streams by metric name, and how many it has in all."""
        async with self._sessions() as session:
            rows, total = await fetch_page(
                session,
                select(StreamRow)
                .where(StreamRow.device_id == device_id)
                .order_by(StreamRow.metric_name),
                offset=offset,
                limit=limit,
            )
            return [_stream(row) for row in rows], total

    async def streams_of_device(self, *, device_id: str) -> list[Stream]:
        """Every stream of a device, by metric name."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(StreamRow)
                .where(StreamRow.device_id == device_id)
                .order_by(StreamRow.metric_name)
            )
            return [_stream(row) for row in rows]

    async def update_stream(self, *, stream_id: str, values: dict[str, Any]) -> Stream | None:
        """Change a stream's settings."""
        async with self._sessions.begin() as session:
            stream = await session.get(StreamRow, stream_id)
            if stream is None:
                return None
            for name, value in values.items():
                setattr(stream, name, value)
            return _stream(stream)

    async def chunks(self, *, stream_id: str, start: int, end: int) -> list[tuple[int, int, bytes]]:
        """(ts_min, ts_max, data) of a stream's chunks overlapping [start, end), oldest first."""
        async with self._sessions() as session:
            rows = await session.execute(
                self.range_query(stream_id=stream_id, start=start, end=end)
            )
            return [(int(a), int(b), bytes(c)) for a, b, c in rows]

    @staticmethod
    def range_query(*, stream_id: str, start: int, end: int) -> Select[int, int, bytes]:
        """The statement :meth:`chunks` runs (the benchmark explains its plan)."""
        return (
            select(ChunkRow.ts_min, ChunkRow.ts_max, ChunkRow.data)
            .where(*_overlapping(stream_id, start, end))
            .order_by(ChunkRow.ts_min, ChunkRow.id)
        )

    async def chunk_spans(
        self, *, stream_id: str, after: int, limit: int
    ) -> list[tuple[int, int, int]]:
        """(ts_min, ts_max, count) of the first ``limit`` chunks of a stream holding readings
        newer than ``after``, by start: what a reader plans its next window with."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(ChunkRow.ts_min, ChunkRow.ts_max, ChunkRow.count)
                .where(*_overlapping(stream_id, after + 1, _NO_END))
                .order_by(ChunkRow.ts_min, ChunkRow.id)
                .limit(limit)
            )
            return [(int(a), int(b), int(c)) for a, b, c in rows]

    async def first_ts(self, *, stream_id: str) -> int | None:
        """Time of a stream's oldest stored reading."""
        async with self._sessions() as session:
            value = await session.scalar(
                select(func.min(ChunkRow.ts_min)).where(ChunkRow.stream_id == stream_id)
            )
            return None if value is None else int(value)

    async def write_group(
        self, *, chunks: Sequence[NewChunk], advances: Sequence[StreamAdvance]
    ) -> None:
        """Store a write group's chunks and stream advances in one transaction."""
        if not chunks:
            return
        # A month met for the first time gets its partition before its rows arrive.
        await self.partitions.ensure(chunk.ts_min for chunk in chunks)
        spans = _spans(chunks)
        # Every stream with a chunk here widens its longest span, with or without an advance.
        params: dict[str, dict[str, Any]] = {
            stream_id: {"b_id": stream_id, "b_added": 0, "b_ts": None, "b_value": None}
            for stream_id in spans
        }
        for a in advances:
            params[a.stream_id] = {
                "b_id": a.stream_id,
                "b_added": a.added,
                "b_ts": a.last_ts,
                "b_value": a.last_value,
            }
        for stream_id, row in params.items():
            row["b_span"] = spans.get(stream_id, 0)
        async with self._sessions.begin() as session:
            # Two executemany statements per group, whatever its size: a statement per
            # stream made the database round trips, not the data, the cost of a group.
            await session.execute(_ADVANCE, list(params.values()))
            # Positions (chunk ids) are drawn last, under the position lock, so that only the
            # insert and the commit are serialised between replicas.
            await _lock_positions(session)
            await session.execute(insert(_CHUNKS), [_chunk_row(c) for c in chunks])
            if self.notices is not None:
                # Sent at commit, never for a rollback.
                await self.notices.announce(session, spans)

    async def small_chunks(
        self, *, stream_ids: Sequence[str], below: int, since: int, upto: int | None = None
    ) -> list[tuple[int, str, bytes]]:
        """(id, stream id, data) of the streams' chunks of fewer than ``below`` readings.

        Only chunks starting at ``since`` or later (the index on (stream, start)
        keeps this from reading a long stream's whole history), and with ids up to
        ``upto`` when given.
        """
        conditions = [
            ChunkRow.stream_id.in_(stream_ids),
            ChunkRow.ts_min >= since,
            ChunkRow.count < below,
        ]
        if upto is not None:
            conditions.append(ChunkRow.id <= upto)
        async with self._sessions() as session:
            rows = await session.execute(
                select(ChunkRow.id, ChunkRow.stream_id, ChunkRow.data)
                .where(*conditions)
                .order_by(ChunkRow.stream_id, ChunkRow.ts_min, ChunkRow.id)
            )
            return [(int(i), str(s), bytes(d)) for i, s, d in rows]

    async def merge_chunks(self, *, merges: Sequence[tuple[Sequence[int], NewChunk]]) -> bool:
        """Replace each set of chunks by one chunk of the same readings, in one transaction.

        The merged chunk takes the highest id of those it replaces, so that chunk
        ids keep meaning "written by then" to whoever follows them. Answers
        False, changing nothing, when some of the chunks are gone already
        (another replica merged them first): both would double the readings.
        """
        old_ids = [chunk_id for ids, _ in merges for chunk_id in ids]
        try:
            async with self._sessions.begin() as session:
                result = await session.execute(delete(_CHUNKS).where(_CHUNKS.c.id.in_(old_ids)))
                if int(result.rowcount or 0) != len(old_ids):  # type: ignore[attr-defined]
                    raise _Changed
                await session.execute(
                    insert(_CHUNKS), [{**_chunk_row(c), "id": max(ids)} for ids, c in merges]
                )
                spans = _spans([chunk for _, chunk in merges])
                await session.execute(
                    _WIDEN, [{"b_id": key, "b_span": span} for key, span in spans.items()]
                )
        except _Changed:
            return False
        return True

    async def drop_chunks_before(self, *, stream_id: str, before: int) -> int:
        """Delete a stream's chunks wholly older than ``before``; answers how many."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(ChunkRow).where(ChunkRow.stream_id == stream_id, ChunkRow.ts_max < before)
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def streams_with_retention(self) -> list[Stream]:
        """Streams that keep readings for a limited time."""
        async with self._sessions() as session:
            rows = await session.scalars(select(StreamRow).where(StreamRow.retention_days > 0))
            return [_stream(row) for row in rows]

    async def purge_device(self, *, device_id: str) -> int:
        """Delete every stream and reading of a device; answers how many streams."""
        async with self._sessions.begin() as session:
            ids = list(
                await session.scalars(select(StreamRow.id).where(StreamRow.device_id == device_id))
            )
            if ids:
                await session.execute(delete(ChunkRow).where(ChunkRow.stream_id.in_(ids)))
                await session.execute(delete(StreamRow).where(StreamRow.id.in_(ids)))
            return len(ids)

    async def newest_position(self) -> int:
        """The highest chunk id stored (0 when there is none)."""
        async with self._sessions() as session:
            newest = await session.scalar(select(func.max(ChunkRow.id)))
        return int(newest or 0)

    async def chunks_after(self, *, position: int, limit: int) -> list[StoredChunk]:
        """Chunks with ids after ``position``, in id order, with their stream's facts."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(
                    ChunkRow.id,
                    ChunkRow.stream_id,
                    StreamRow.device_id,
                    StreamRow.owner_id,
                    StreamRow.device_type,
                    StreamRow.metric_name,
                    StreamRow.sampling_rate,
                    StreamRow.sampling_period_us,
                    ChunkRow.data,
                    ChunkRow.count,
                )
                .join(StreamRow, StreamRow.id == ChunkRow.stream_id)
                .where(ChunkRow.id > position)
                .order_by(ChunkRow.id)
                .limit(limit)
            )
            return [
                StoredChunk(
                    int(i), s, d, o, t or "", m, int(r or 0), _period_us(p, r), bytes(b), int(n)
                )
                for i, s, d, o, t, m, r, p, b, n in rows
            ]

    async def cursor(self, *, name: str) -> int:
        """A stored cursor position (0 when never stored)."""
        async with self._sessions() as session:
            row = await session.get(CursorRow, name)
            return 0 if row is None else int(row.position)

    async def save_cursor(self, *, name: str, position: int) -> None:
        """Move a cursor forward to ``position``; never back.

        Replicas share their cursors: a replica whose forwarder is behind must
        not take back what another's analytics acknowledged.
        """
        async with self._sessions.begin() as session:
            moved = await session.execute(
                update(CursorRow)
                .where(CursorRow.name == name)
                .values(
                    position=case(
                        (CursorRow.position < position, position), else_=CursorRow.position
                    )
                )
            )
            if not moved.rowcount:  # type: ignore[attr-defined]
                session.add(CursorRow(name=name, position=position))

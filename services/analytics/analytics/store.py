"""Analytics' tables and queries (SQLAlchemy 2, async).

Analytics owns detector state, anomalies and their review, the anomaly score
of every analysed reading, and correlation results; it owns no raw readings
(those stay in telemetry). Rows stay in here: queries answer the domain values
of ``values.py`` and writes take them.

Several analytics replicas share these tables. A stream's detector row is its
"analysed up to": an analysis commits only if every detector it used is still
as it was read (position and last update, checked under a row lock in the
transaction that stores the results), so two replicas can never both analyse
one chunk, and a review changes a detector under the same lock.

Scores are kept like telemetry's readings: a row per analysed chunk, with the
chunk's span and its timestamps and scores as one compressed blob
(:mod:`iotkit.codec`, scores quantised to 16 bits), so that storing them costs
one row per chunk rather than one per reading.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from iotkit.codec import Float64s, Int64s, decode_many, encode
from iotkit.listing import fetch_page
from iotkit.notices import NoticeChannel
from iotkit.sqltypes import SEQUENCE, UtcDateTime
from services.analytics.analytics.values import (
    Anomaly,
    Checkpoint,
    Correlation,
    Scores,
    ScoreSeries,
)

SCORE_STEPS = 65_535  # scores are stored as whole steps of 1/65535: 16 bits each


class Base(DeclarativeBase):
    """Declarative base of analytics' tables."""


class DetectorRow(Base):
    """A stream's detector: its checkpointed state and how far it has analysed."""

    __tablename__ = "detectors"

    stream_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(36), index=True)
    device_id: Mapped[str] = mapped_column(String(36))
    position: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    def to_value(self) -> Checkpoint:
        """The detector as a domain value."""
        return Checkpoint(**_columns(self))


class AnomalyRow(Base):
    """A detected anomaly with its review; unique per stream, type and reading time."""

    __tablename__ = "anomalies"
    __table_args__ = (
        UniqueConstraint("stream_id", "anomaly_type", "detected_us"),
        Index("ix_anomalies_owner_detected", "owner_id", "detected_us"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    stream_id: Mapped[str] = mapped_column(String(36), index=True)
    device_id: Mapped[str] = mapped_column(String(36), index=True)
    owner_id: Mapped[str] = mapped_column(String(36))
    detected_us: Mapped[int] = mapped_column(BigInteger)
    # Added after anomalies first shipped: NULL in a row from before, shown as
    # detected_us, the best there is to say.
    known_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    anomaly_type: Mapped[str] = mapped_column(String(16))
    raw_value: Mapped[float] = mapped_column(Float)
    expected_value: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    found_at: Mapped[datetime] = mapped_column(UtcDateTime)
    reviewed_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    review_note: Mapped[str] = mapped_column(String(1000), default="")

    def to_value(self) -> Anomaly:
        """The anomaly as a domain value."""
        columns = _columns(self)
        if columns["known_us"] is None:
            columns["known_us"] = self.detected_us
        return Anomaly(**columns)


class ScoreRow(Base):
    """The scores of one analysed chunk of a stream: its span, and the scores encoded."""

    __tablename__ = "scores"
    __table_args__ = (Index("ix_scores_stream_span", "stream_id", "first_us", "last_us"),)

    id: Mapped[int] = mapped_column(SEQUENCE, primary_key=True, autoincrement=True)
    stream_id: Mapped[str] = mapped_column(String(36))
    device_id: Mapped[str] = mapped_column(String(36), index=True)
    first_us: Mapped[int] = mapped_column(BigInteger)
    last_us: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class CorrelationRow(Base):
    """A stored correlation result."""

    __tablename__ = "correlations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(36), index=True)
    stream_a: Mapped[str] = mapped_column(String(36))
    stream_b: Mapped[str] = mapped_column(String(36))
    coefficient: Mapped[float] = mapped_column(Float)
    window_start: Mapped[datetime] = mapped_column(UtcDateTime)
    window_end: Mapped[datetime] = mapped_column(UtcDateTime)
    algorithm: Mapped[str] = mapped_column(String(32))
    sample_count: Mapped[int] = mapped_column(Integer)
    best_lag_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    grid_seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    # How far the coefficient can be trusted (see services/analytics/analytics/correlation.py).
    p_value: Mapped[float] = mapped_column(Float, default=1.0)
    ci_low: Mapped[float] = mapped_column(Float, default=-1.0)
    ci_high: Mapped[float] = mapped_column(Float, default=1.0)
    effective_sample_count: Mapped[float] = mapped_column(Float, default=0.0)
    lags_tried: Mapped[int] = mapped_column(Integer, default=1)

    def to_value(self) -> Correlation:
        """The correlation result as a domain value."""
        return Correlation(**_columns(self))


class RetiredDeviceRow(Base):
    """A decommissioned device: its results are gone and its late chunks are ignored."""

    __tablename__ = "retired_devices"

    device_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    retired_at: Mapped[datetime] = mapped_column(UtcDateTime)


@dataclass(frozen=True, slots=True)
class AnomalyQuery:
    """Filters and window of an anomaly listing."""

    owner_id: str | None
    stream_id: str | None
    device_id: str | None
    anomaly_type: str | None
    status: str | None
    start_us: int | None
    end_us: int | None
    min_confidence: float
    offset: int
    limit: int | None


Version = tuple[int, datetime]
"""What a detector row was when read: its position and last update."""


class StaleDetectors(Exception):
    """Another replica changed these streams' detectors since they were read; nothing of
    the analysis was stored."""

    def __init__(self, stream_ids: Iterable[str]) -> None:
        self.stream_ids = frozenset(stream_ids)
        super().__init__(f"{len(self.stream_ids)} detectors changed since they were read")


def version_of(checkpoint: Checkpoint) -> Version:
    """The version of a stored detector, to commit an analysis of it against."""
    return checkpoint.position, checkpoint.updated_at


def _columns(row: Base) -> dict[str, Any]:
    """A mapped row's column values by attribute name, for its domain value."""
    return {column.key: getattr(row, column.key) for column in row.__mapper__.column_attrs}


def _score_row(series: ScoreSeries) -> dict[str, Any] | None:
    """A chunk's scores as a row (None when it has none): finite ones only, in steps."""
    finite = np.isfinite(series.scores)
    timestamps = series.timestamps[finite].astype(np.int64)
    if not timestamps.size:
        return None
    steps = np.round(np.clip(series.scores[finite], 0.0, 1.0) * SCORE_STEPS)
    return {
        "stream_id": series.stream_id,
        "device_id": series.device_id,
        "first_us": int(timestamps.min()),
        "last_us": int(timestamps.max()),
        "count": int(timestamps.size),
        "data": encode(timestamps, steps),
    }


def _fields(value: Checkpoint | Anomaly | Correlation) -> dict[str, Any]:
    """A domain value's fields by name (its row's columns), for a statement or a row.

    Shallow on purpose: ``dataclasses.asdict`` would deep-copy every detector's state.
    """
    return {field.name: getattr(value, field.name) for field in fields(value)}


def _decode_scores(blobs: Sequence[bytes]) -> tuple[Int64s, Float64s]:
    """Decoded score rows, by time; of two scores of one reading, the later row's."""
    if not blobs:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    timestamps, steps = decode_many(blobs)
    order = np.argsort(timestamps, kind="stable")
    timestamps, steps = timestamps[order], steps[order]
    last = np.append(timestamps[1:] != timestamps[:-1], True)
    return timestamps[last], steps[last] / SCORE_STEPS


class AnalyticsStore:
    """Queries over analytics' tables."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, dialect: str) -> None:
        self._sessions = sessions
        self.notices: NoticeChannel | None = None
        """Where each analysis tells other replicas the anomalies it stored (PostgreSQL
        notices, ``iotkit.notices``), so that their live watchers hear of them; None
        tells no one."""
        # ON CONFLICT DO NOTHING is spelt per dialect in SQLAlchemy.
        self._insert = pg_insert if dialect == "postgresql" else sqlite_insert

    async def detector(self, *, stream_id: str) -> Checkpoint | None:
        """A stream's stored detector."""
        async with self._sessions() as session:
            row = await session.get(DetectorRow, stream_id)
            return None if row is None else row.to_value()

    async def commit_analysis(
        self,
        *,
        detectors: Sequence[Checkpoint],
        read_as: Mapping[str, Version | None],
        anomalies: Sequence[Anomaly],
        scores: Sequence[ScoreSeries] = (),
    ) -> list[Anomaly]:
        """Store detector checkpoints, new anomalies and the chunks' scores in one transaction.

        ``read_as`` is each detector's version when the analysis read it (None:
        none was stored). If any is no longer so, another replica analysed or
        reviewed that stream meanwhile: nothing is stored and
        :class:`StaleDetectors` names them. Answers the anomalies actually
        inserted: one already stored (same stream, type and time) is not stored
        twice. Scores are not checked so: a chunk is analysed once (its position
        moves the checkpoint stored here, and only from the position read).
        """
        async with self._sessions.begin() as session:
            if detectors:
                await self._claim_detectors(session, detectors, read_as)
            rows = [row for row in map(_score_row, scores) if row is not None]
            if rows:
                await session.execute(insert(ScoreRow), rows)
            if not anomalies:
                return []
            statement = self._insert(AnomalyRow).on_conflict_do_nothing().returning(AnomalyRow.id)
            result = await session.execute(statement, [_fields(a) for a in anomalies])
            stored = set(result.scalars())
            if self.notices is not None and stored:
                await self.notices.announce(session, sorted(stored))  # sent at commit
        return [anomaly for anomaly in anomalies if anomaly.id in stored]

    async def anomalies_by_id(self, *, anomaly_ids: Sequence[str]) -> list[Anomaly]:
        """The anomalies of ``anomaly_ids`` that exist, in time order."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(AnomalyRow)
                .where(AnomalyRow.id.in_(anomaly_ids))
                .order_by(AnomalyRow.detected_us, AnomalyRow.id)
            )
            return [row.to_value() for row in rows]

    async def _claim_detectors(
        self,
        session: AsyncSession,
        detectors: Sequence[Checkpoint],
        read_as: Mapping[str, Version | None],
    ) -> None:
        """Write the detectors if each is still at the version read; else raise StaleDetectors.

        Stored rows are locked (FOR UPDATE on PostgreSQL) before they are
        compared, so a replica committing the same stream waits, then finds it
        changed. New rows are inserted only where none appeared meanwhile.
        """
        ids = [detector.stream_id for detector in detectors]
        rows = await session.execute(
            select(DetectorRow.stream_id, DetectorRow.position, DetectorRow.updated_at)
            .where(DetectorRow.stream_id.in_(ids))
            .order_by(DetectorRow.stream_id)  # one lock order for every replica: no deadlock
            .with_for_update()
        )
        stored: dict[str, Version] = {row[0]: (row[1], row[2]) for row in rows}
        stale = {stream for stream in ids if stored.get(stream) != read_as.get(stream)}
        if stale:
            raise StaleDetectors(stale)
        # Inserted in stream order too: two replicas inserting the same new streams in
        # different orders would each wait for the other's.
        new = sorted(
            (detector for detector in detectors if detector.stream_id not in stored),
            key=lambda detector: detector.stream_id,
        )
        if new:
            inserted = await session.execute(
                self._insert(DetectorRow).on_conflict_do_nothing().returning(DetectorRow.stream_id),
                [_fields(detector) for detector in new],
            )
            lost = {detector.stream_id for detector in new} - set(inserted.scalars())
            if lost:
                raise StaleDetectors(lost)
        kept = [detector for detector in detectors if detector.stream_id in stored]
        if kept:
            await self._upsert_detectors(session, kept)

    async def _upsert_detectors(
        self, session: AsyncSession, detectors: Sequence[Checkpoint]
    ) -> None:
        # One statement for every stream of a request: a merge per row would read each
        # row back first, and that cost most of analysis at a hundred streams.
        statement = self._insert(DetectorRow)
        statement = statement.on_conflict_do_update(
            index_elements=[DetectorRow.stream_id],
            set_={
                "position": statement.excluded.position,
                "state": statement.excluded.state,
                "updated_at": statement.excluded.updated_at,
            },
        )
        await session.execute(statement, [_fields(detector) for detector in detectors])

    async def anomalies(self, *, query: AnomalyQuery) -> tuple[list[Anomaly], int]:
        """A page of anomalies, newest first, and how many match in all."""
        conditions: list[Any] = [AnomalyRow.confidence >= query.min_confidence]
        for column, value in (
            (AnomalyRow.owner_id, query.owner_id),
            (AnomalyRow.stream_id, query.stream_id),
            (AnomalyRow.device_id, query.device_id),
            (AnomalyRow.anomaly_type, query.anomaly_type),
            (AnomalyRow.status, query.status),
        ):
            if value is not None:
                conditions.append(column == value)
        if query.start_us is not None:
            conditions.append(AnomalyRow.detected_us >= query.start_us)
        if query.end_us is not None:
            conditions.append(AnomalyRow.detected_us < query.end_us)
        async with self._sessions() as session:
            rows, total = await fetch_page(
                session,
                select(AnomalyRow)
                .where(*conditions)
                .order_by(AnomalyRow.detected_us.desc(), AnomalyRow.id),
                offset=query.offset,
                limit=query.limit,
            )
            return [row.to_value() for row in rows], total

    async def anomaly(self, *, anomaly_id: str) -> Anomaly | None:
        """One anomaly."""
        async with self._sessions() as session:
            row = await session.get(AnomalyRow, anomaly_id)
            return None if row is None else row.to_value()

    async def review(
        self, *, anomaly_id: str, status: str, reviewer: str, note: str, now: datetime
    ) -> Anomaly | None:
        """Record a review."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(AnomalyRow)
                .where(AnomalyRow.id == anomaly_id)
                .values(status=status, reviewed_by=reviewer, reviewed_at=now, review_note=note)
            )
            row = await session.get(AnomalyRow, anomaly_id)
            return None if row is None else row.to_value()

    async def forget_device(self, *, device_id: str, now: datetime) -> int:
        """Delete a device's anomalies and detectors and remember it as retired, in one
        transaction; answers how many anomalies went."""
        async with self._sessions.begin() as session:
            await session.execute(
                self._insert(RetiredDeviceRow)
                .values(device_id=device_id, retired_at=now)
                .on_conflict_do_nothing()
            )
            removed = await session.execute(
                delete(AnomalyRow).where(AnomalyRow.device_id == device_id)
            )
            await session.execute(delete(DetectorRow).where(DetectorRow.device_id == device_id))
            await session.execute(delete(ScoreRow).where(ScoreRow.device_id == device_id))
            return int(removed.rowcount or 0)  # type: ignore[attr-defined]

    async def retired_among(self, *, device_ids: Iterable[str]) -> set[str]:
        """Which of ``device_ids`` have been decommissioned."""
        ids = list(device_ids)
        if not ids:
            return set()
        async with self._sessions() as session:
            rows = await session.scalars(
                select(RetiredDeviceRow.device_id).where(RetiredDeviceRow.device_id.in_(ids))
            )
            return set(rows)

    async def scores(
        self, *, stream_id: str, start_us: int, end_us: int | None, limit: int
    ) -> Scores:
        """A stream's scores in [start_us, end_us), oldest first, at most ``limit``.

        Only the rows that the first ``limit`` scores can lie in are decoded: rows
        are taken by their first reading until they hold ``limit`` scores, and
        the answer stops before the first reading of the next row (rows may
        overlap: late readings are analysed in chunks of their own). When more
        may follow, ``next_us`` is where to start again; it is always after
        ``start_us``, so paging through a range ends.
        """
        conditions: list[Any] = [ScoreRow.stream_id == stream_id, ScoreRow.last_us >= start_us]
        if end_us is not None:
            conditions.append(ScoreRow.first_us < end_us)
        async with self._sessions() as session:
            spans = (
                await session.execute(
                    select(ScoreRow.first_us, ScoreRow.count)
                    .where(*conditions)
                    .order_by(ScoreRow.first_us, ScoreRow.id)
                )
            ).all()
            cutoff: int | None = None
            held, taken_us = 0, start_us
            for first_us, count in spans:
                # A cutoff after the start and after every row taken: the answer moves on.
                if held >= limit and first_us > start_us and first_us > taken_us:
                    cutoff = int(first_us)
                    break
                held += int(count)
                taken_us = int(first_us)
            if cutoff is not None:
                conditions.append(ScoreRow.first_us < cutoff)
            blobs = list(
                await session.scalars(
                    select(ScoreRow.data).where(*conditions).order_by(ScoreRow.id)
                )
            )
        timestamps, scores = _decode_scores(blobs)
        inside = timestamps >= start_us
        if end_us is not None:
            inside &= timestamps < end_us
        if cutoff is not None:
            inside &= timestamps < cutoff
        timestamps, scores = timestamps[inside], scores[inside]
        if timestamps.size > limit:
            return Scores(stream_id, timestamps[:limit], scores[:limit], int(timestamps[limit]))
        return Scores(stream_id, timestamps, scores, cutoff)

    async def change_detector(
        self, *, stream_id: str, change: Callable[[Checkpoint], Checkpoint]
    ) -> Checkpoint | None:
        """Apply ``change`` to a stream's stored detector under a row lock and store the
        result (a review or new settings); None when the stream has none.

        Read and written in one transaction, so a change made by another
        replica meanwhile is never overwritten, and an analysis that read the
        detector before finds it changed (see :meth:`commit_analysis`).
        """
        async with self._sessions.begin() as session:
            row = await session.scalar(
                select(DetectorRow).where(DetectorRow.stream_id == stream_id).with_for_update()
            )
            if row is None:
                return None
            changed = change(row.to_value())
            await self._upsert_detectors(session, [changed])
            return changed

    async def add_correlation(self, *, correlation: Correlation) -> None:
        """Store a correlation result."""
        async with self._sessions.begin() as session:
            session.add(CorrelationRow(**_fields(correlation)))

    async def correlation(self, *, correlation_id: str) -> Correlation | None:
        """One correlation result."""
        async with self._sessions() as session:
            row = await session.get(CorrelationRow, correlation_id)
            return None if row is None else row.to_value()

    async def correlations(
        self, *, owner_id: str | None, stream_id: str | None, offset: int, limit: int | None
    ) -> tuple[list[Correlation], int]:
        """A page of correlation results, newest first."""
        conditions: list[Any] = []
        if owner_id is not None:
            conditions.append(CorrelationRow.owner_id == owner_id)
        if stream_id is not None:
            conditions.append(
                (CorrelationRow.stream_a == stream_id) | (CorrelationRow.stream_b == stream_id)
            )
        async with self._sessions() as session:
            rows, total = await fetch_page(
                session,
                select(CorrelationRow)
                .where(*conditions)
                .order_by(CorrelationRow.created_at.desc(), CorrelationRow.id),
                offset=offset,
                limit=limit,
            )
            return [row.to_value() for row in rows], total

"""Anomaly review, listing, live watching, correlations, detectors and exports.

A user sees the anomalies, correlations and detectors of their own streams
(another user's are "not found"); an admin sees all.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from iotkit import reasons
from iotkit.context import Caller
from iotkit.convert import epoch_micros, micros_datetime
from iotkit.errors import (
    FailedPrecondition,
    FieldViolation,
    NotFound,
    Unavailable,
    ValidationFailed,
)
from iotkit.listing import PageRequest, check_page
from iotkit.ownership import owned
from iotkit.sqltypes import utcnow
from iotkit.streams import Watch
from iotkit.validation import Violations, check_uuid
from services.analytics.analytics import correlation
from services.analytics.analytics.analysis import AnalysisService, CrossedBounds
from services.analytics.analytics.correlation import Float64s, Int64s
from services.analytics.analytics.detectors import THRESHOLD_RANGE
from services.analytics.analytics.hub import AnomalyHub
from services.analytics.analytics.store import AnalyticsStore, AnomalyQuery
from services.analytics.analytics.values import Anomaly, Correlation, Detector, Scores

Value = TypeVar("Value")  # a stored value that an export pages through

ANOMALY_TYPES = ("spike", "dip", "out_of_range", "flatline", "rate_of_change", "gap")
STATUSES = ("pending", "confirmed", "dismissed")
# The media type of each export format; CSV when no format is asked for.
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}
EXPORT_FORMATS = tuple(CONTENT_TYPES)
NOTE_MAX = 1000
SCORES_LIMIT_DEFAULT, SCORES_LIMIT_MAX = 10_000, 1_000_000
MAX_WINDOW_DAYS = 31
DEFAULT_MAX_LAG_SECONDS = 60.0
EXPORT_PAGE = 1000
ANOMALY_COLUMNS = (
    "anomaly_id",
    "stream_id",
    "device_id",
    "detected_at",
    "anomaly_type",
    "raw_value",
    "confidence_score",
    "status",
    "reviewed_by",
    "reviewed_at",
    "review_note",
    "known_at",  # last, so that a reader of the columns before it by position is unchanged
)
CORRELATION_COLUMNS = (
    "correlation_id",
    "stream_a",
    "stream_b",
    "coefficient",
    "window_start",
    "window_end",
    "algorithm",
    "sample_count",
    "best_lag_seconds",
    "p_value",
    "ci_low",
    "ci_high",
)
# A text cell starting with one of these is run as a formula by a spreadsheet (CSV
# injection): the CSV exports put an apostrophe before it, as the personal data export does
# (services/auth/data/formats.py, ``_cell``). JSON exports keep the text as it is.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class TooFewSamples(ValidationFailed):
    """Too few paired readings in the window: EMPTY_WINDOW, with the field to change.

    The request is well formed and what is missing is data in the window, so
    the code stays a failed precondition (a 400 through the gateway); the field
    violation tells the caller what to change.
    """

    code = FailedPrecondition.code
    reason = reasons.EMPTY_WINDOW

    def __init__(self, *, pairs: int, needed: int) -> None:
        super().__init__(
            [
                FieldViolation(
                    "window_start",
                    f"the window holds {pairs} samples where both streams have readings;"
                    f" at least {needed} are needed: widen the window",
                )
            ],
            "The window holds too few readings of both streams to correlate",
        )
        self.metadata = {"samples": str(pairs), "needed": str(needed)}


def iso_us(micros: int) -> str:
    """RFC 3339 UTC text of microseconds since the epoch."""
    return micros_datetime(micros).isoformat().replace("+00:00", "Z")


def iso(moment: datetime | None) -> str:
    """RFC 3339 UTC text of a datetime, or empty."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else ""


class StreamReader(Protocol):
    """Reads a stream's readings with the caller's token (telemetry, over gRPC, in a process)."""

    async def read(
        self, *, token: str, stream_id: str, start_us: int, end_us: int
    ) -> tuple[Int64s, Float64s]:
        """Readings of ``stream_id`` in [start_us, end_us); raises if the caller may not read
        it, :class:`Unavailable` when its owner cannot be asked now."""
        ...


def _anomaly_query(
    violations: Violations,
    caller: Caller,
    *,
    stream_id: str,
    device_id: str,
    anomaly_type: str,
    status: str,
    start: datetime | None,
    end: datetime | None,
    min_confidence: float,
) -> AnomalyQuery:
    """The caller's anomalies that the filters select (first page's bounds), each bad filter
    added to ``violations``: one check for the list and the export alike."""
    if stream_id:
        stream_id = check_uuid(violations, stream_id, field="stream_id")
    if device_id:
        device_id = check_uuid(violations, device_id, field="device_id")
    if anomaly_type and anomaly_type not in ANOMALY_TYPES:
        violations.add("anomaly_type", f"anomaly_type must be one of: {', '.join(ANOMALY_TYPES)}")
    if status and status not in STATUSES:
        violations.add("status", f"status must be one of: {', '.join(STATUSES)}")
    if not (math.isfinite(min_confidence) and 0.0 <= min_confidence <= 1.0):
        violations.add("min_confidence", "min_confidence must be between 0 and 1")
    if start and end and end <= start:
        violations.add("end", "end must be after start")
    return AnomalyQuery(
        owner_id=None if caller.is_admin else caller.subject,
        stream_id=stream_id or None,
        device_id=device_id or None,
        anomaly_type=anomaly_type or None,
        status=status or None,
        start_us=epoch_micros(start) if start else None,
        end_us=epoch_micros(end) if end else None,
        min_confidence=min_confidence,
        offset=0,
        limit=0,
    )


def content_type(fmt: str) -> str:
    """The media type of an export in ``fmt`` (as the export methods take it)."""
    return CONTENT_TYPES.get((fmt or "csv").lower(), CONTENT_TYPES["csv"])


def anomaly_record(row: Anomaly) -> dict[str, object]:
    """An anomaly as an export record, with the seed's field names."""
    return {
        "anomaly_id": row.id,
        "stream_id": row.stream_id,
        "device_id": row.device_id,
        "detected_at": iso_us(row.detected_us),
        "anomaly_type": row.anomaly_type,
        "raw_value": row.raw_value,
        "confidence_score": row.confidence,
        "status": row.status,
        "reviewed_by": row.reviewed_by or "",
        "reviewed_at": iso(row.reviewed_at),
        "review_note": row.review_note,
        "known_at": iso_us(row.known_us),
    }


def correlation_record(row: Correlation) -> dict[str, object]:
    """A correlation as an export record, with the seed's field names."""
    return {
        "correlation_id": row.id,
        "stream_a": row.stream_a,
        "stream_b": row.stream_b,
        "coefficient": row.coefficient,
        "window_start": iso(row.window_start),
        "window_end": iso(row.window_end),
        "algorithm": row.algorithm,
        "sample_count": row.sample_count,
        "best_lag_seconds": row.best_lag_seconds,
        "p_value": row.p_value,
        "ci_low": row.ci_low,
        "ci_high": row.ci_high,
    }


class AnomalyService:
    """Listing, reviewing, watching and exporting anomalies."""

    def __init__(
        self,
        *,
        store: AnalyticsStore,
        analysis: AnalysisService,
        hub: AnomalyHub,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._analysis = analysis
        self._hub = hub
        self._clock = clock

    async def list(
        self,
        *,
        caller: Caller,
        page: int,
        limit: int,
        stream_id: str,
        device_id: str,
        anomaly_type: str,
        status: str,
        start: datetime | None,
        end: datetime | None,
        min_confidence: float,
    ) -> tuple[list[Anomaly], int, PageRequest]:
        """A page of the caller's anomalies, its total and the checked page request."""
        violations = Violations()
        request = check_page(violations, page, limit)
        query = _anomaly_query(
            violations,
            caller,
            stream_id=stream_id,
            device_id=device_id,
            anomaly_type=anomaly_type,
            status=status,
            start=start,
            end=end,
            min_confidence=min_confidence,
        )
        violations.raise_if_any()
        rows, total = await self._store.anomalies(
            query=replace(query, offset=request.offset, limit=request.limit)
        )
        return rows, total, request

    async def get(self, *, caller: Caller, anomaly_id: str) -> Anomaly:
        """One of the caller's anomalies."""
        violations = Violations()
        anomaly_id = check_uuid(violations, anomaly_id, field="anomaly_id")
        violations.raise_if_any()
        return owned(
            await self._store.anomaly(anomaly_id=anomaly_id),
            caller,
            message="Anomaly not found",
            reason=reasons.ANOMALY_NOT_FOUND,
        )

    async def review(self, *, caller: Caller, anomaly_id: str, status: str, note: str) -> Anomaly:
        """Confirm, dismiss or reopen an anomaly; the stream's detector learns from it."""
        violations = Violations()
        if status not in STATUSES:
            violations.add("status", f"status must be one of: {', '.join(STATUSES)}")
        if len(note) > NOTE_MAX:
            violations.add("note", f"note must be at most {NOTE_MAX} characters")
        violations.raise_if_any()
        row = await self.get(caller=caller, anomaly_id=anomaly_id)
        reviewed = await self._store.review(
            anomaly_id=row.id,
            status=status,
            reviewer=caller.subject,
            note=note.strip(),
            now=self._clock(),
        )
        if reviewed is None:
            raise NotFound("Anomaly not found", reason=reasons.ANOMALY_NOT_FOUND)
        if status != row.status:
            await self._analysis.feedback(stream_id=row.stream_id, status=status)
        return reviewed

    def watch(self, *, caller: Caller, stream_id: str, device_id: str) -> Watch[Anomaly]:
        """The caller's anomalies as they are found (watched when this returns; close it);
        the filters are checked as the listing's are (a stream id in capitals, matched as
        given, matched nothing)."""
        violations = Violations()
        if stream_id:
            stream_id = check_uuid(violations, stream_id, field="stream_id")
        if device_id:
            device_id = check_uuid(violations, device_id, field="device_id")
        violations.raise_if_any()

        def accepts(row: Anomaly) -> bool:
            mine = caller.is_admin or row.owner_id == caller.subject
            return (
                mine
                and (not stream_id or row.stream_id == stream_id)
                and (not device_id or row.device_id == device_id)
            )

        return self._hub.watch(accepts)

    async def export(
        self,
        *,
        caller: Caller,
        fmt: str,
        stream_id: str,
        status: str,
        device_id: str = "",
        anomaly_type: str = "",
        start: datetime | None = None,
        end: datetime | None = None,
        min_confidence: float = 0.0,
    ) -> AsyncIterator[bytes]:
        """The caller's anomalies as CSV or JSON, produced a page at a time: the ones the same
        filters list, every page of them."""
        fmt = _check_format(fmt)
        violations = Violations()
        query = _anomaly_query(
            violations,
            caller,
            stream_id=stream_id,
            device_id=device_id,
            anomaly_type=anomaly_type,
            status=status,
            start=start,
            end=end,
            min_confidence=min_confidence,
        )
        violations.raise_if_any()
        query = replace(query, limit=EXPORT_PAGE)

        async def fetch(offset: int) -> Sequence[Anomaly]:
            rows, _ = await self._store.anomalies(query=replace(query, offset=offset))
            return rows

        async for chunk in _encode(_pages(fetch, anomaly_record), fmt, ANOMALY_COLUMNS):
            yield chunk


class CorrelationService:
    """Correlating two of the caller's streams, and the stored results."""

    def __init__(
        self,
        *,
        store: AnalyticsStore,
        reader: StreamReader,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._reader = reader
        self._clock = clock

    async def create(
        self,
        *,
        caller: Caller,
        stream_a: str,
        stream_b: str,
        window_start: datetime | None,
        window_end: datetime | None,
        algorithm: str,
        max_lag_seconds: float,
    ) -> Correlation:
        """Compute and store a correlation between two streams the caller may read."""
        violations = Violations()
        stream_a = check_uuid(violations, stream_a, field="stream_a")
        stream_b = check_uuid(violations, stream_b, field="stream_b")
        if stream_a == stream_b and not violations.has("stream_a"):
            violations.add("stream_b", "stream_b must be a different stream from stream_a")
        if algorithm not in correlation.ALGORITHMS:
            violations.add(
                "algorithm", f"algorithm must be one of: {', '.join(correlation.ALGORITHMS)}"
            )
        if window_start is None:
            violations.add("window_start", "window_start is required")
        if window_end is None:
            violations.add("window_end", "window_end is required")
        if window_start and window_end:
            if window_end <= window_start:
                violations.add("window_end", "window_end must be after window_start")
            elif (window_end - window_start).total_seconds() > MAX_WINDOW_DAYS * 86_400:
                violations.add("window_end", f"the window may span at most {MAX_WINDOW_DAYS} days")
        if not (math.isfinite(max_lag_seconds) and 0 <= max_lag_seconds <= 3600):
            violations.add("max_lag_seconds", "max_lag_seconds must be between 0 and 3600")
        elif window_start and window_end and not violations.has("window_end"):
            # Beyond half the window, the two ends of a lag search overlap in less than half of
            # it: those lags could only win by the chance of a few pairs.
            half = (window_end - window_start).total_seconds() / 2
            if algorithm == "cross_correlation" and max_lag_seconds > half:
                violations.add(
                    "max_lag_seconds",
                    f"max_lag_seconds must be at most half the window ({half:g} s)",
                )
            max_lag_seconds = min(max_lag_seconds or DEFAULT_MAX_LAG_SECONDS, half)
        violations.raise_if_any()
        assert window_start is not None and window_end is not None
        start_us, end_us = epoch_micros(window_start), epoch_micros(window_end)
        series = []
        for stream_id in (stream_a, stream_b):
            try:
                series.append(
                    await self._reader.read(
                        token=caller.token, stream_id=stream_id, start_us=start_us, end_us=end_us
                    )
                )
            except Unavailable:
                raise
            except Exception as exc:  # telemetry's NOT_FOUND covers foreign and unknown alike
                raise NotFound(
                    f"Stream {stream_id} not found", reason=reasons.STREAM_NOT_FOUND
                ) from exc
        (ts_a, values_a), (ts_b, values_b) = series
        try:
            # In a thread: a long window of fast streams takes seconds of numpy (which lets go
            # of the GIL), and the loop meanwhile carries every stream's detection.
            result = await asyncio.to_thread(
                correlation.correlate,
                ts_a,
                values_a,
                ts_b,
                values_b,
                start=start_us,
                end=end_us,
                algorithm=algorithm,
                max_lag_us=int(max_lag_seconds * 1e6),
            )
        except correlation.TooFewPairs as few:
            raise TooFewSamples(pairs=few.pairs, needed=few.needed) from few
        found = Correlation(
            id=str(uuid.uuid4()),
            owner_id=caller.subject,
            stream_a=stream_a,
            stream_b=stream_b,
            coefficient=round(result.coefficient, 6),
            window_start=window_start,
            window_end=window_end,
            algorithm=algorithm,
            sample_count=result.samples,
            best_lag_seconds=result.best_lag_us / 1e6,
            grid_seconds=result.grid_us / 1e6,
            p_value=result.p_value,
            ci_low=round(result.ci_low, 6),
            ci_high=round(result.ci_high, 6),
            effective_sample_count=round(result.effective_samples, 2),
            lags_tried=result.lags_tried,
            created_at=self._clock(),
        )
        await self._store.add_correlation(correlation=found)
        return found

    async def get(self, *, caller: Caller, correlation_id: str) -> Correlation:
        """One of the caller's correlation results."""
        violations = Violations()
        correlation_id = check_uuid(violations, correlation_id, field="correlation_id")
        violations.raise_if_any()
        return owned(
            await self._store.correlation(correlation_id=correlation_id),
            caller,
            message="Correlation not found",
            reason=reasons.CORRELATION_NOT_FOUND,
        )

    async def list(
        self, *, caller: Caller, page: int, limit: int, stream_id: str
    ) -> tuple[list[Correlation], int, PageRequest]:
        """A page of the caller's correlation results."""
        violations = Violations()
        request = check_page(violations, page, limit)
        if stream_id:
            stream_id = check_uuid(violations, stream_id, field="stream_id")
        violations.raise_if_any()
        rows, total = await self._store.correlations(
            owner_id=None if caller.is_admin else caller.subject,
            stream_id=stream_id or None,
            offset=request.offset,
            limit=request.limit,
        )
        return rows, total, request

    async def export(self, *, caller: Caller, fmt: str, stream_id: str) -> AsyncIterator[bytes]:
        """The caller's correlation results as CSV or JSON, a page at a time."""
        fmt = _check_format(fmt)

        async def fetch(offset: int) -> Sequence[Correlation]:
            rows, _ = await self._store.correlations(
                owner_id=None if caller.is_admin else caller.subject,
                stream_id=stream_id or None,
                offset=offset,
                limit=EXPORT_PAGE,
            )
            return rows

        async for chunk in _encode(_pages(fetch, correlation_record), fmt, CORRELATION_COLUMNS):
            yield chunk


class DetectorService:
    """A stream's detector and the scores it gave, shown to the stream's owner (or an admin);
    its settings changed by them."""

    def __init__(self, *, analysis: AnalysisService, store: AnalyticsStore) -> None:
        self._analysis = analysis
        self._store = store

    async def get(self, *, caller: Caller, stream_id: str) -> Detector:
        """The detector of one of the caller's streams."""
        return await self._own_stream(caller=caller, stream_id=stream_id)

    async def scores(
        self,
        *,
        caller: Caller,
        stream_id: str,
        start: datetime | None,
        end: datetime | None,
        limit: int,
    ) -> Scores:
        """Scores of one of the caller's streams over [start, end), oldest first, at most
        ``limit`` (SCORES_LIMIT_DEFAULT when 0)."""
        stream_id = (await self._own_stream(caller=caller, stream_id=stream_id)).stream_id
        violations = Violations()
        limit = limit or SCORES_LIMIT_DEFAULT
        if not 1 <= limit <= SCORES_LIMIT_MAX:
            violations.add("limit", f"limit must be between 1 and {SCORES_LIMIT_MAX:,}")
        if start and end and end <= start:
            violations.add("end", "end must be after start")
        violations.raise_if_any()
        return await self._store.scores(
            stream_id=stream_id,
            start_us=epoch_micros(start) if start else -(2**63),
            end_us=epoch_micros(end) if end else None,
            limit=limit,
        )

    async def update(
        self,
        *,
        caller: Caller,
        stream_id: str,
        min_value: float | None,
        max_value: float | None,
        threshold: float | None,
    ) -> Detector:
        """Change the bounds or base threshold of one of the caller's streams' detector.

        ``None`` leaves a setting as it is. A bound is a number or no bound: -Infinity as
        the lowest, Infinity as the highest (what the console sends for an emptied field);
        NaN, Infinity as the lowest and -Infinity as the highest are refused. The lowest
        must stay below the highest: a bound given alone is checked against the stored
        other, and the field given is named.
        """
        stream_id = (await self._own_stream(caller=caller, stream_id=stream_id)).stream_id
        violations = Violations()
        low, high = THRESHOLD_RANGE
        if threshold is not None and not low <= threshold <= high:
            violations.add("threshold", f"threshold must be between {low:g} and {high:g}")
        # Proto JSON spells the infinities "Infinity" and "-Infinity".
        for field, value, wrong, none in (
            ("min_value", min_value, "Infinity", "-Infinity for no lower bound"),
            ("max_value", max_value, "-Infinity", "Infinity for no upper bound"),
        ):
            if value is not None and math.isnan(value):
                violations.add(field, f"{field} must be a number")
            elif value == float(wrong):
                violations.add(field, f"{field} cannot be {wrong}: give a number, or {none}")
        if (
            min_value is not None
            and max_value is not None
            and not violations.has("min_value")
            and not violations.has("max_value")
            and min_value >= max_value
        ):
            violations.add("max_value", "max_value must be above min_value")
        violations.raise_if_any()
        try:
            found = await self._analysis.configure(
                stream_id=stream_id, min_value=min_value, max_value=max_value, threshold=threshold
            )
        except CrossedBounds as crossed:  # one bound given, crossing the stored other
            if max_value is None:
                violations.add(
                    "min_value",
                    f"min_value must be below max_value ({crossed.max_value:g}),"
                    " or be sent with a higher max_value",
                )
            else:
                violations.add(
                    "max_value",
                    f"max_value must be above min_value ({crossed.min_value:g}),"
                    " or be sent with a lower min_value",
                )
            violations.raise_if_any()
            raise
        if found is None:
            raise NotFound("No detector for this stream yet", reason=reasons.DETECTOR_NOT_FOUND)
        return found

    async def _own_stream(self, *, caller: Caller, stream_id: str) -> Detector:
        """Detectors are shown to the stream's owner only: another's stream is not found.

        Analytics knows a stream once its detector exists, so a stream without one is
        not found either.
        """
        violations = Violations()
        stream_id = check_uuid(violations, stream_id, field="stream_id")  # in any case
        violations.raise_if_any()
        found = await self._analysis.detector(stream_id=stream_id)
        if found is None or (found.owner_id != caller.subject and not caller.is_admin):
            raise NotFound("Stream not found", reason=reasons.STREAM_NOT_FOUND)
        return found


def _check_format(fmt: str) -> str:
    violations = Violations()
    fmt = (fmt or "csv").lower()
    if fmt not in EXPORT_FORMATS:
        violations.add("format", "format must be one of: csv, json")
    violations.raise_if_any()
    return fmt


async def _pages(
    fetch: Callable[[int], Awaitable[Sequence[Value]]],
    record: Callable[[Value], dict[str, object]],
) -> AsyncIterator[list[dict[str, object]]]:
    """Every value that ``fetch(offset)`` answers, EXPORT_PAGE at a time, as export records."""
    offset = 0
    while True:
        rows = await fetch(offset)
        yield [record(row) for row in rows]
        if len(rows) < EXPORT_PAGE:
            return
        offset += EXPORT_PAGE


def csv_cell(value: object) -> object:
    """A value as a CSV export writes it: text a spreadsheet would run as a formula behind
    an apostrophe (``'=cmd|...``); numbers, even negative ones, as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


async def _encode(
    pages: AsyncIterator[list[dict[str, object]]], fmt: str, columns: tuple[str, ...]
) -> AsyncIterator[bytes]:
    """CSV with a header row (every text cell through :func:`csv_cell`), or one JSON array,
    written as the pages come."""
    first = True
    if fmt == "json":
        yield b"["
    else:
        yield (",".join(columns) + "\r\n").encode()
    async for page in pages:
        if fmt == "json":
            parts = []
            for record in page:
                parts.append(("" if first else ",") + json.dumps(record))
                first = False
            if parts:
                yield "".join(parts).encode()
        elif page:
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\r\n")
            writer.writerows({key: csv_cell(value) for key, value in row.items()} for row in page)
            yield buffer.getvalue().encode()
    if fmt == "json":
        yield b"]"

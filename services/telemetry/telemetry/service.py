"""Streams and their data: creating, listing, changing streams, charting ranges, purging.

Access is the device's: a user reads and writes the streams of their own
devices (as the devices service decides); another user's stream is "not found".
A decommissioned device's streams are purged, and analytics told, by
:meth:`StreamService.purge_device`. Charts may carry analytics' anomaly scores,
asked with the caller's token: when analytics cannot answer, the chart is
answered without them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any, Protocol

from iotkit import reasons
from iotkit.codec import Float64s, Int64s
from iotkit.context import Caller
from iotkit.convert import epoch_micros
from iotkit.device_access import DeviceAccessClient
from iotkit.errors import NotFound
from iotkit.listing import LIMIT_MAX, PageRequest, check_page
from iotkit.sqltypes import utcnow
from iotkit.streams import Watch
from iotkit.validation import Violations, check_uuid
from services.telemetry.telemetry import query
from services.telemetry.telemetry.ingest import METRIC_NAME, IngestService, too_many_streams
from services.telemetry.telemetry.live import LiveEvent, ReadingHub, watch_readings
from services.telemetry.telemetry.sampling import IRREGULAR, check_sampling
from services.telemetry.telemetry.store import TelemetryStore
from services.telemetry.telemetry.values import Stream

READ_CHUNK = 10_000
MAX_RETENTION_DAYS = 36_500


def _not_found() -> NotFound:
    return NotFound("Stream not found", reason=reasons.STREAM_NOT_FOUND)


class PurgeListener(Protocol):
    """Who must hear of a purged device: analytics, through the forwarder."""

    async def forget_device(self, device_id: str) -> None:
        """Forget the device's data; raises when it cannot be told (the purge is retried)."""
        ...


class ScoreSource(Protocol):
    """Analytics' scores of a stream, asked with the caller's token (over gRPC, in a process)."""

    async def scores(
        self, *, token: str, stream_id: str, start_us: int, end_us: int
    ) -> tuple[Int64s, Float64s] | None:
        """Scores of the readings in [start_us, end_us), by time (empty when analytics has
        none yet); None when analytics could not be asked or refused."""
        ...


class StreamService:
    """Stream management and range queries."""

    def __init__(
        self,
        *,
        store: TelemetryStore,
        ingest: IngestService,
        access: DeviceAccessClient,
        analytics: PurgeListener,
        scores: ScoreSource | None = None,
        live: ReadingHub | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._ingest = ingest
        self._access = access
        self._analytics = analytics
        self._scores = scores
        self._live = live or ReadingHub()
        self._clock = clock

    async def create(
        self,
        *,
        caller: Caller,
        token: str,
        device_id: str,
        metric_name: str,
        sampling_rate: int,
        retention_days: int,
        sampling_period_us: int | None = None,
    ) -> Stream:
        """Create a stream explicitly (or answer the existing one of that metric, updated).

        A ``sampling_rate`` of 0 is no rate given (proto3 cannot tell them apart);
        ``sampling_period_us`` is None when not given. See ``sampling``.
        """
        violations = Violations()
        device_id = check_uuid(violations, device_id, field="device_id")
        if not METRIC_NAME.match(metric_name):
            violations.add(
                "metric_name", "metric_name must be 1 to 64 letters, digits, '_', '.' or '-'"
            )
        sampling = (
            check_sampling(violations, rate=sampling_rate or None, period_us=sampling_period_us)
            or IRREGULAR
        )
        _check_retention(violations, retention_days)
        violations.raise_if_any()
        grant = await self._access.check(token=token, device_id=device_id, access="write")
        if not grant.allowed:
            raise NotFound("Device not found", reason=reasons.DEVICE_NOT_FOUND)
        existing = await self._store.stream_of(device_id=device_id, metric_name=metric_name)
        if existing is not None:
            updated = await self._store.update_stream(
                stream_id=existing.id,
                values={
                    "sampling_rate": sampling.rate,
                    "sampling_period_us": sampling.period_us,
                    "retention_days": retention_days,
                },
            )
            return updated or existing
        limit = self._ingest.max_streams_per_device
        if await self._store.count_streams(device_id=device_id) >= limit:
            raise too_many_streams(limit)
        return await self._store.add_stream(
            stream=Stream(
                id=str(uuid.uuid4()),
                device_id=device_id,
                owner_id=grant.owner_id,
                metric_name=metric_name,
                device_type=grant.device_type,
                sampling_rate=sampling.rate,
                sampling_period_us=sampling.period_us,
                retention_days=retention_days,
                created_at=self._clock(),
                readings_count=0,
            )
        )

    async def list_for_device(
        self, *, caller: Caller, token: str, device_id: str, page: int = 1, limit: int = 0
    ) -> tuple[list[Stream], int, PageRequest]:
        """A page of the streams of one of the caller's devices, the total, and the page asked.

        A page holds 100 streams unless ``limit`` says otherwise: every stream of a
        device at the default per-device limit.
        """
        violations = Violations()
        device_id = check_uuid(violations, device_id, field="device_id")
        request = check_page(violations, page, limit, default=LIMIT_MAX)
        violations.raise_if_any()
        grant = await self._access.check(token=token, device_id=device_id, access="read")
        if not grant.allowed:
            raise NotFound("Device not found", reason=reasons.DEVICE_NOT_FOUND)
        streams, total = await self._store.stream_page(
            device_id=device_id, offset=request.offset, limit=request.limit
        )
        return streams, total, request

    async def get(self, *, caller: Caller, token: str, stream_id: str) -> Stream:
        """One of the caller's streams."""
        return await self._readable(caller, token, stream_id)

    async def update(
        self,
        *,
        caller: Caller,
        token: str,
        stream_id: str,
        sampling_rate: int | None,
        retention_days: int | None,
        sampling_period_us: int | None = None,
    ) -> Stream:
        """Change a stream's sampling (rate, period or both alike) or retention; None keeps it."""
        violations = Violations()
        sampling = check_sampling(violations, rate=sampling_rate, period_us=sampling_period_us)
        _check_retention(violations, retention_days or 0)
        violations.raise_if_any()
        stream = await self._ingest.stream_for(
            caller=caller, token=token, stream_id=stream_id, access="write"
        )
        if stream is None:
            raise _not_found()
        values: dict[str, Any] = {}
        if sampling is not None:
            values["sampling_rate"] = sampling.rate
            values["sampling_period_us"] = sampling.period_us
        if retention_days is not None:
            values["retention_days"] = retention_days
        updated = await self._store.update_stream(stream_id=stream.id, values=values)
        if updated is None:
            raise _not_found()
        return updated

    async def data(
        self,
        *,
        caller: Caller,
        token: str,
        stream_id: str,
        start: datetime | None,
        end: datetime | None,
        max_points: int,
        normalization: str,
        include_scores: bool = False,
    ) -> tuple[Stream, int, int, query.Series]:
        """A chart of a range: the stream, the range answered (µs) and the series.

        With ``include_scores`` the series carries analytics' scores (``scores``
        None when analytics could not give them).
        """
        violations = Violations()
        max_points = max_points or query.MAX_POINTS_DEFAULT
        if not 2 <= max_points <= query.MAX_POINTS_LIMIT:
            violations.add(
                "max_points", f"max_points must be between 2 and {query.MAX_POINTS_LIMIT}"
            )
        normalization = (normalization or "none").lower()
        if normalization not in query.NORMALIZATIONS:
            violations.add("normalization", "normalization must be one of: none, min_max, z_score")
        if start and end and end <= start:
            violations.add("end", "end must be after start")
        violations.raise_if_any()
        stream = await self._readable(caller, token, stream_id)
        low, high = await self._range(stream, start, end)
        timestamps, values = await query.read_range(
            self._store, stream_id=stream.id, start=low, end=high
        )
        scores = None
        if include_scores and self._scores is not None:
            found = await self._scores.scores(
                token=token, stream_id=stream.id, start_us=low, end_us=high
            )
            if found is not None:
                scores = query.scores_at(timestamps, *found)
        return (
            stream,
            low,
            high,
            query.series(
                timestamps,
                values,
                max_points=max_points,
                normalization=normalization,
                scores=scores,
            ),
        )

    async def read(
        self,
        *,
        caller: Caller,
        token: str,
        stream_id: str,
        start: datetime | None,
        end: datetime | None,
    ) -> AsyncIterator[tuple[Int64s, Float64s]]:
        """Every reading of a range, in chunks of at most READ_CHUNK, oldest first."""
        stream = await self._readable(caller, token, stream_id)
        low, high = await self._range(stream, start, end)
        timestamps, values = await query.read_range(
            self._store, stream_id=stream.id, start=low, end=high
        )
        for offset in range(0, timestamps.size, READ_CHUNK):
            yield timestamps[offset : offset + READ_CHUNK], values[offset : offset + READ_CHUNK]

    async def watch(
        self, *, caller: Caller, token: str, stream_id: str, after: int
    ) -> Watch[LiveEvent]:
        """One of the caller's streams live: its readings newer than ``after`` (µs) read back
        from the store, then each batch as it is committed (see ``live``); 0 for only the
        readings stored from now on. Checks access before answering the iterator."""
        if after < 0:
            violations = Violations()
            violations.add("last_event_id", "last_event_id must be 0 or a reading time in µs")
            violations.raise_if_any()
        stream = await self._readable(caller, token, stream_id)
        return await watch_readings(
            store=self._store, hub=self._live, stream_id=stream.id, after=after
        )

    async def purge_device(self, *, device_id: str) -> int:
        """Delete every stream and reading of a decommissioned device; answers how many streams.

        Called by the decommission follower for each event; raises when analytics
        could not be told, so that the follower keeps its cursor and the next
        round purges (a no-op by then) and tells analytics again.
        """
        ids = {s.id for s in await self._store.streams_of_device(device_id=device_id)}
        purged = await self._store.purge_device(device_id=device_id)
        self._ingest.forget(ids)
        # Analytics learns of the decommission from here: one call per device, retried with
        # the event until it succeeds (analytics does not follow the event log itself).
        await self._analytics.forget_device(device_id)
        return purged

    async def _readable(self, caller: Caller, token: str, stream_id: str) -> Stream:
        violations = Violations()
        stream_id = check_uuid(violations, stream_id, field="stream_id")
        violations.raise_if_any()
        allowed = await self._ingest.stream_for(
            caller=caller, token=token, stream_id=stream_id, access="read"
        )
        # The ingest cache answers who owns a stream; its counters come fresh from the store.
        stream = await self._store.stream(stream_id=allowed.id) if allowed else None
        if stream is None:
            raise _not_found()
        return stream

    async def _range(
        self, stream: Stream, start: datetime | None, end: datetime | None
    ) -> tuple[int, int]:
        now_us = epoch_micros(self._clock())
        high = epoch_micros(end) if end else max(now_us, (stream.last_ts or 0) + 1)
        if start:
            low = epoch_micros(start)
        else:
            low = await self._store.first_ts(stream_id=stream.id) or high
        if stream.retention_days:
            low = max(low, now_us - stream.retention_days * 86_400_000_000)
        return low, max(high, low)


def _check_retention(violations: Violations, retention_days: int) -> None:
    if not 0 <= retention_days <= MAX_RETENTION_DAYS:
        violations.add(
            "retention_days", f"retention_days must be between 0 and {MAX_RETENTION_DAYS}"
        )

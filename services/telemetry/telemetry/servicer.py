"""gRPC <-> domain translation for ``iot.telemetry.v1.TelemetryService``."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import numpy as np
from grpc import aio

from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc
from iotkit.context import current_caller
from iotkit.convert import (
    datetime_field,
    duration_micros,
    micros,
    micros_duration,
    micros_timestamp,
    timestamp,
)
from iotkit.listing import pagination
from iotkit.streams import serve_watch
from iotkit.validation import INT64_MAX, INT64_MIN
from services.telemetry.telemetry.ingest import BatchResult, EntryIn, IngestService
from services.telemetry.telemetry.live import LiveEvent
from services.telemetry.telemetry.service import StreamService
from services.telemetry.telemetry.values import Stream

Context: TypeAlias = aio.ServicerContext[Any, Any]


def readings_event_message(event: LiveEvent) -> telemetry_pb2.StreamReadingsEvent:
    """A batch a live watch sends (its id is the newest reading's time, for resuming)."""
    return telemetry_pb2.StreamReadingsEvent(
        event_id=event.position,
        stream_id=event.stream_id,
        timestamps=event.timestamps.tolist(),
        values=event.values.tolist(),
    )


def stream_message(stream: Stream) -> telemetry_pb2.SensorStream:
    """A stream as the API shows it (seed 000 SensorStreamDTO)."""
    return telemetry_pb2.SensorStream(
        stream_id=stream.id,
        device_id=stream.device_id,
        metric_name=stream.metric_name,
        sampling_rate=stream.sampling_rate,
        sampling_period=micros_duration(stream.sampling_period_us),
        created_at=timestamp(stream.created_at),
        retention_days=stream.retention_days,
        last_seen_at=micros_timestamp(stream.last_ts) if stream.last_ts is not None else None,
        # Unset (absent in JSON too) before the first reading, rather than a made-up 0.0.
        latest_value=stream.last_value,
        readings_count=stream.readings_count,
    )


def ack_message(sequence: int, result: BatchResult) -> telemetry_pb2.BatchAck:
    """The acknowledgement of a stored batch."""
    return telemetry_pb2.BatchAck(
        sequence=sequence,
        accepted=result.accepted,
        rejected=result.rejected,
        duplicates=result.duplicates,
        rejections=[
            telemetry_pb2.Rejection(
                index=r.index,
                stream_id=r.stream_id,
                count=r.count,
                reason=r.reason,
                message=r.message,
                device_id=r.device_id,
            )
            for r in result.rejections
        ],
        stream_ids=result.stream_ids,
        summary=result.summary,
    )


def entries_of(batch: telemetry_pb2.ReadingBatch) -> list[EntryIn]:
    """The columnar entries of a batch as numpy arrays."""
    return [
        EntryIn(
            stream_id=entry.stream_id,
            device_id=entry.device_id,
            metric_name=entry.metric_name,
            # np.array uses the repeated field's __array__: about 15x faster than np.fromiter.
            timestamps=np.array(entry.timestamps, dtype=np.int64),
            values=np.array(entry.values, dtype=np.float64),
        )
        for entry in batch.streams
    ]


class TelemetryServicer(telemetry_pb2_grpc.TelemetryServiceServicer):
    """Each RPC reads its message, calls the services and builds the answer."""

    def __init__(self, *, ingest: IngestService, streams: StreamService) -> None:
        self._ingest = ingest
        self._streams = streams

    async def StreamReadings(
        self, request_iterator: AsyncIterator[telemetry_pb2.ReadingBatch], context: Context
    ) -> AsyncIterator[telemetry_pb2.BatchAck]:
        """Store each batch, then acknowledge it; one batch at a time per stream."""
        async for batch in request_iterator:
            caller = current_caller()
            result = await self._ingest.ingest(
                caller=caller, token=caller.token, entries=entries_of(batch)
            )
            yield ack_message(batch.sequence, result)

    async def UploadReadings(
        self, request: telemetry_pb2.UploadReadingsRequest, context: Context
    ) -> telemetry_pb2.BatchAck:
        """Store the readings of one metric of one device; fails when none is stored."""
        caller = current_caller()
        entry = EntryIn(
            stream_id="",
            device_id=request.device_id,
            metric_name=request.metric_name,
            # A reading's time is an int64 of microseconds, as StreamReadings sends it: a
            # Timestamp past that range is kept at its end, where the ingest's checks refuse
            # it as too old or in the future (it raised OverflowError: INTERNAL).
            timestamps=np.array(
                [min(max(micros(r.timestamp), INT64_MIN), INT64_MAX) for r in request.readings],
                dtype=np.int64,
            ),
            values=np.array([r.value for r in request.readings], dtype=np.float64),
        )
        result = await self._ingest.upload(caller=caller, token=caller.token, entry=entry)
        return ack_message(0, result)

    async def CreateStream(
        self, request: telemetry_pb2.CreateStreamRequest, context: Context
    ) -> telemetry_pb2.SensorStream:
        """Create a stream."""
        caller = current_caller()
        stream = await self._streams.create(
            caller=caller,
            token=caller.token,
            device_id=request.device_id,
            metric_name=request.metric_name,
            sampling_rate=request.sampling_rate,
            sampling_period_us=duration_micros(request, "sampling_period"),
            retention_days=request.retention_days,
        )
        return stream_message(stream)

    async def ListStreams(
        self, request: telemetry_pb2.ListStreamsRequest, context: Context
    ) -> telemetry_pb2.ListStreamsResponse:
        """The streams of a device."""
        caller = current_caller()
        streams, total, page = await self._streams.list_for_device(
            caller=caller,
            token=caller.token,
            device_id=request.device_id,
            page=request.page,
            limit=request.limit,
        )
        return telemetry_pb2.ListStreamsResponse(
            streams=[stream_message(s) for s in streams], pagination=pagination(page, total)
        )

    async def GetStream(
        self, request: telemetry_pb2.GetStreamRequest, context: Context
    ) -> telemetry_pb2.SensorStream:
        """One stream."""
        caller = current_caller()
        return stream_message(
            await self._streams.get(caller=caller, token=caller.token, stream_id=request.stream_id)
        )

    async def UpdateStream(
        self, request: telemetry_pb2.UpdateStreamRequest, context: Context
    ) -> telemetry_pb2.SensorStream:
        """Change a stream."""
        caller = current_caller()
        stream = await self._streams.update(
            caller=caller,
            token=caller.token,
            stream_id=request.stream_id,
            sampling_rate=request.sampling_rate if request.HasField("sampling_rate") else None,
            retention_days=request.retention_days if request.HasField("retention_days") else None,
            sampling_period_us=duration_micros(request, "sampling_period"),
        )
        return stream_message(stream)

    async def GetStreamData(
        self, request: telemetry_pb2.GetStreamDataRequest, context: Context
    ) -> telemetry_pb2.SensorDataResponse:
        """A range of a stream for a chart."""
        caller = current_caller()
        stream, low, high, series = await self._streams.data(
            caller=caller,
            token=caller.token,
            stream_id=request.stream_id,
            start=datetime_field(request, "start"),
            end=datetime_field(request, "end"),
            max_points=request.max_points,
            normalization=request.normalization,
            include_scores=request.include_scores,
        )
        stats = series.stats
        response = telemetry_pb2.SensorDataResponse(
            stream=stream_message(stream),
            time_range=telemetry_pb2.TimeRange(
                start=micros_timestamp(low), end=micros_timestamp(high)
            ),
            stats=telemetry_pb2.Stats(
                count=stats.count,
                min=stats.min,
                max=stats.max,
                mean=stats.mean,
                stddev=stats.stddev,
                first=stats.first,
                last=stats.last,
            ),
            downsampled=series.downsampled,
            downsampling="min_max" if series.downsampled else "raw",
            normalization=request.normalization.lower() or "none",
            scores_available=series.scores is not None,
        )
        normalized = None if series.normalized is None else series.normalized.tolist()
        scores = None if series.scores is None else series.scores.tolist()
        # Points are filled in place: making a DataPoint and a Timestamp message for each and
        # copying them into the answer took 8x as long (80 ms for a raw range of 10,000).
        add = response.data.add
        for i, (ts, value) in enumerate(
            zip(series.timestamps.tolist(), series.values.tolist(), strict=True)
        ):
            point = add(value=value)
            seconds, micros = divmod(ts, 1_000_000)  # as Timestamp.FromMicroseconds
            point.timestamp.seconds, point.timestamp.nanos = seconds, micros * 1000
            if normalized is not None:
                point.normalized_value = normalized[i]
            # NaN is "no score": the field is left out.
            if scores is not None and not math.isnan(scores[i]):
                point.anomaly_score = scores[i]
        return response

    async def ReadStream(
        self, request: telemetry_pb2.ReadStreamRequest, context: Context
    ) -> AsyncIterator[telemetry_pb2.ReadingChunk]:
        """Every reading of a range, in chunks."""
        caller = current_caller()
        async for timestamps, values in self._streams.read(
            caller=caller,
            token=caller.token,
            stream_id=request.stream_id,
            start=datetime_field(request, "start"),
            end=datetime_field(request, "end"),
        ):
            yield telemetry_pb2.ReadingChunk(
                stream_id=request.stream_id, timestamps=timestamps.tolist(), values=values.tolist()
            )

    async def WatchStreamReadings(
        self, request: telemetry_pb2.WatchStreamReadingsRequest, context: Context
    ) -> AsyncIterator[telemetry_pb2.StreamReadingsEvent]:
        """A stream's readings as they are stored, after ``last_event_id`` when given."""
        caller = current_caller()
        after, stream_id = request.last_event_id, request.stream_id
        # Subscribed before the client hears the watch is open: it may store readings next.
        events = await self._streams.watch(
            caller=caller, token=caller.token, stream_id=stream_id, after=after
        )
        async for message in serve_watch(context, events, readings_event_message):
            yield message

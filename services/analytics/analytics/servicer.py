"""gRPC <-> domain translation for ``iot.analytics.v1.AnalyticsService``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import numpy as np
from google.api import httpbody_pb2
from grpc import aio

from iot.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from iotkit.codec import decode
from iotkit.context import current_caller
from iotkit.convert import datetime_field, micros_timestamp, timestamp
from iotkit.listing import pagination
from iotkit.streams import serve_watch
from iotkit.validation import INT64_MAX, Violations
from services.analytics.analytics.analysis import AnalysisService, ChunkIn
from services.analytics.analytics.service import (
    AnomalyService,
    CorrelationService,
    DetectorService,
    content_type,
)
from services.analytics.analytics.values import Anomaly, Correlation, Detector

Context: TypeAlias = aio.ServicerContext[Any, Any]


def anomaly_message(row: Anomaly) -> analytics_pb2.Anomaly:
    """An anomaly as the API shows it (seed 000 AnomalyDetectionDTO)."""
    return analytics_pb2.Anomaly(
        anomaly_id=row.id,
        stream_id=row.stream_id,
        detected_at=micros_timestamp(row.detected_us),
        anomaly_type=row.anomaly_type,
        raw_value=row.raw_value,
        confidence_score=row.confidence,
        status=row.status,
        device_id=row.device_id,
        reviewed_by=row.reviewed_by or "",
        reviewed_at=timestamp(row.reviewed_at),
        review_note=row.review_note,
        expected_value=row.expected_value,
        found_at=timestamp(row.found_at),
        known_at=micros_timestamp(row.known_us),
    )


def correlation_message(row: Correlation) -> analytics_pb2.Correlation:
    """A correlation result (seed 000 CorrelationResultDTO)."""
    return analytics_pb2.Correlation(
        correlation_id=row.id,
        stream_a=row.stream_a,
        stream_b=row.stream_b,
        coefficient=row.coefficient,
        window_start=timestamp(row.window_start),
        window_end=timestamp(row.window_end),
        algorithm=row.algorithm,
        sample_count=row.sample_count,
        best_lag_seconds=row.best_lag_seconds,
        grid_seconds=row.grid_seconds,
        created_at=timestamp(row.created_at),
        p_value=row.p_value,
        ci_low=row.ci_low,
        ci_high=row.ci_high,
        effective_sample_count=row.effective_sample_count,
        lags_tried=row.lags_tried,
    )


def detector_message(detector: Detector) -> analytics_pb2.Detector:
    """A stream's detector settings and what it has learnt."""
    state = detector.state
    return analytics_pb2.Detector(
        stream_id=detector.stream_id,
        device_type=state.device_type,
        min_value=state.min_value,
        max_value=state.max_value,
        threshold=state.threshold,
        base_threshold=state.base_threshold,
        dismissed=state.dismissed,
        confirmed=state.confirmed,
        readings=state.readings,
        level=state.level,
        scale=state.scale,
        late_readings=state.late,
    )


def _period_us(chunk: analytics_pb2.StreamChunk) -> float:
    """A chunk's expected interval; a sender from before the period gives only the rate."""
    if chunk.sampling_period_us > 0:
        return float(chunk.sampling_period_us)
    return 1e6 / chunk.sampling_rate if chunk.sampling_rate else 0.0


Readings: TypeAlias = tuple[np.ndarray, np.ndarray]


def _readings(request: analytics_pb2.AnalysisRequest) -> list[Readings]:
    """Each chunk's timestamps and values: decoded from ``data`` when it carries them (as
    telemetry forwards them), else its columns. Refuses a chunk whose columns differ in
    length (no reading can be paired up), or whose ``data`` is not a chunk of
    ``iotkit.codec`` or comes with columns too (which readings would be meant?), or whose
    position is past what a detector's (signed 64-bit) position column holds."""
    violations = Violations()
    readings: list[Readings] = []
    for index, chunk in enumerate(request.chunks):
        # A detector keeps it in a signed 64-bit column; telemetry's positions (a
        # database sequence) never come near its end.
        if chunk.position > INT64_MAX:
            violations.add(f"chunks[{index}].position", f"must be at most {INT64_MAX}")
            continue
        if chunk.data:
            if chunk.timestamps or chunk.values:
                violations.add(f"chunks[{index}].data", "must come without timestamps and values")
                continue
            try:
                readings.append(decode(chunk.data))
            except ValueError as exc:
                violations.add(f"chunks[{index}].data", f"is not an encoded chunk: {exc}")
            continue
        if len(chunk.values) != len(chunk.timestamps):
            violations.add(f"chunks[{index}].values", "must hold one value per timestamp")
            continue
        readings.append(
            (
                np.fromiter(chunk.timestamps, dtype=np.int64, count=len(chunk.timestamps)),
                np.fromiter(chunk.values, dtype=np.float64, count=len(chunk.values)),
            )
        )
    violations.raise_if_any()
    return readings


class AnalyticsServicer(analytics_pb2_grpc.AnalyticsServiceServicer):
    """Each RPC reads its message, calls the services and builds the answer."""

    def __init__(
        self,
        *,
        analysis: AnalysisService,
        anomalies: AnomalyService,
        correlations: CorrelationService,
        detectors: DetectorService,
    ) -> None:
        self._analysis = analysis
        self._anomalies = anomalies
        self._correlations = correlations
        self._detectors = detectors

    async def AnalyzeReadings(
        self, request_iterator: AsyncIterator[analytics_pb2.AnalysisRequest], context: Context
    ) -> AsyncIterator[analytics_pb2.AnalysisResponse]:
        """Analyse each forwarded request, then acknowledge it."""
        async for request in request_iterator:
            chunks = [
                ChunkIn(
                    position=chunk.position,
                    stream_id=chunk.stream_id,
                    device_id=chunk.device_id,
                    owner_id=chunk.owner_id,
                    device_type=chunk.device_type,
                    sampling_period_us=_period_us(chunk),
                    timestamps=timestamps,
                    values=values,
                )
                for chunk, (timestamps, values) in zip(
                    request.chunks, _readings(request), strict=True
                )
            ]
            watermark, stored = await self._analysis.analyze(chunks)
            yield analytics_pb2.AnalysisResponse(watermark=watermark, anomalies=len(stored))

    async def ForgetDevice(
        self, request: analytics_pb2.ForgetDeviceRequest, context: Context
    ) -> analytics_pb2.ForgetDeviceResponse:
        """Delete a decommissioned device's anomalies and detectors."""
        removed = await self._analysis.forget_device(device_id=request.device_id)
        return analytics_pb2.ForgetDeviceResponse(anomalies_removed=removed)

    async def ListAnomalies(
        self, request: analytics_pb2.ListAnomaliesRequest, context: Context
    ) -> analytics_pb2.ListAnomaliesResponse:
        """A page of anomalies."""
        rows, total, page = await self._anomalies.list(
            caller=current_caller(),
            page=request.page,
            limit=request.limit,
            stream_id=request.stream_id,
            device_id=request.device_id,
            anomaly_type=request.anomaly_type,
            status=request.status,
            start=datetime_field(request, "start"),
            end=datetime_field(request, "end"),
            min_confidence=request.min_confidence,
        )
        return analytics_pb2.ListAnomaliesResponse(
            anomalies=[anomaly_message(row) for row in rows],
            pagination=pagination(page, total),
        )

    async def ExportAnomalies(
        self, request: analytics_pb2.ExportRequest, context: Context
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        """Anomalies as CSV or JSON."""
        chunks = self._anomalies.export(
            caller=current_caller(),
            fmt=request.format,
            stream_id=request.stream_id,
            status=request.status,
            device_id=request.device_id,
            anomaly_type=request.anomaly_type,
            start=datetime_field(request, "start"),
            end=datetime_field(request, "end"),
            min_confidence=request.min_confidence,
        )
        async for data in chunks:
            yield httpbody_pb2.HttpBody(content_type=content_type(request.format), data=data)

    async def WatchAnomalies(
        self, request: analytics_pb2.WatchAnomaliesRequest, context: Context
    ) -> AsyncIterator[analytics_pb2.Anomaly]:
        """New anomalies as they are found."""
        # Watched before the client hears the watch is open: it may store readings next.
        rows = self._anomalies.watch(
            caller=current_caller(), stream_id=request.stream_id, device_id=request.device_id
        )
        async for message in serve_watch(context, rows, anomaly_message):
            yield message

    async def GetAnomaly(
        self, request: analytics_pb2.GetAnomalyRequest, context: Context
    ) -> analytics_pb2.Anomaly:
        """One anomaly."""
        return anomaly_message(
            await self._anomalies.get(caller=current_caller(), anomaly_id=request.anomaly_id)
        )

    async def ReviewAnomaly(
        self, request: analytics_pb2.ReviewAnomalyRequest, context: Context
    ) -> analytics_pb2.Anomaly:
        """Confirm or dismiss an anomaly."""
        row = await self._anomalies.review(
            caller=current_caller(),
            anomaly_id=request.anomaly_id,
            status=request.status,
            note=request.note,
        )
        return anomaly_message(row)

    async def GetDetector(
        self, request: analytics_pb2.GetDetectorRequest, context: Context
    ) -> analytics_pb2.Detector:
        """A stream's detector."""
        return detector_message(
            await self._detectors.get(caller=current_caller(), stream_id=request.stream_id)
        )

    async def GetScores(
        self, request: analytics_pb2.GetScoresRequest, context: Context
    ) -> analytics_pb2.GetScoresResponse:
        """Scores of a stream's readings over a range."""
        found = await self._detectors.scores(
            caller=current_caller(),
            stream_id=request.stream_id,
            start=datetime_field(request, "start"),
            end=datetime_field(request, "end"),
            limit=request.limit,
        )
        return analytics_pb2.GetScoresResponse(
            stream_id=found.stream_id,  # as stored, however the request spelled it
            timestamps_us=found.timestamps.tolist(),
            scores=found.scores.tolist(),
            next_start=micros_timestamp(found.next_us) if found.next_us is not None else None,
        )

    async def UpdateDetector(
        self, request: analytics_pb2.UpdateDetectorRequest, context: Context
    ) -> analytics_pb2.Detector:
        """Change a stream's detector settings (an absent field stays as it is)."""
        found = await self._detectors.update(
            caller=current_caller(),
            stream_id=request.stream_id,
            min_value=request.min_value if request.HasField("min_value") else None,
            max_value=request.max_value if request.HasField("max_value") else None,
            threshold=request.threshold if request.HasField("threshold") else None,
        )
        return detector_message(found)

    async def CreateCorrelation(
        self, request: analytics_pb2.CreateCorrelationRequest, context: Context
    ) -> analytics_pb2.Correlation:
        """Correlate two streams."""
        row = await self._correlations.create(
            caller=current_caller(),
            stream_a=request.stream_a,
            stream_b=request.stream_b,
            window_start=datetime_field(request, "window_start"),
            window_end=datetime_field(request, "window_end"),
            algorithm=request.algorithm,
            max_lag_seconds=request.max_lag_seconds,
        )
        return correlation_message(row)

    async def ListCorrelations(
        self, request: analytics_pb2.ListCorrelationsRequest, context: Context
    ) -> analytics_pb2.ListCorrelationsResponse:
        """A page of correlation results."""
        rows, total, page = await self._correlations.list(
            caller=current_caller(),
            page=request.page,
            limit=request.limit,
            stream_id=request.stream_id,
        )
        return analytics_pb2.ListCorrelationsResponse(
            correlations=[correlation_message(row) for row in rows],
            pagination=pagination(page, total),
        )

    async def ExportCorrelations(
        self, request: analytics_pb2.ExportRequest, context: Context
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        """Correlation results as CSV or JSON."""
        async for data in self._correlations.export(
            caller=current_caller(), fmt=request.format, stream_id=request.stream_id
        ):
            yield httpbody_pb2.HttpBody(content_type=content_type(request.format), data=data)

    async def GetCorrelation(
        self, request: analytics_pb2.GetCorrelationRequest, context: Context
    ) -> analytics_pb2.Correlation:
        """One correlation result."""
        row = await self._correlations.get(
            caller=current_caller(), correlation_id=request.correlation_id
        )
        return correlation_message(row)

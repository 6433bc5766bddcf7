"""The chat assistant's gRPC clients: devices, telemetry, analytics, auth and the status.

Every call carries the asker's own bearer token (so another user's data is
out of reach by construction) and a deadline; an unreachable or slow service
becomes :class:`~services.chat.chat.sources.SourceUnavailable`.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TypeVar

import grpc
from grpc import aio

from iot.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from iot.auth.v1 import profile_pb2, profile_pb2_grpc
from iot.devices.v1 import devices_pb2, devices_pb2_grpc
from iot.system.v1 import system_pb2, system_pb2_grpc
from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc
from iotkit.context import bearer_metadata
from iotkit.convert import datetime_field, timestamp
from iotkit.server import is_unavailable
from services.chat.chat.sources import (
    AnomalyInfo,
    CorrelationInfo,
    DeviceInfo,
    SourceUnavailable,
    Stats,
    StreamInfo,
)

DEADLINE = 5.0
"""Seconds one call may take before the answer says the data cannot be reached."""

T = TypeVar("T")


async def _call(pending: Awaitable[T]) -> T:
    """The answer of a call in flight; an unreachable or slow service is SourceUnavailable."""
    try:
        return await pending
    except grpc.aio.AioRpcError as exc:
        if is_unavailable(exc):
            raise SourceUnavailable(exc.code().name) from exc
        raise


class GrpcSources:
    """:class:`~services.chat.chat.sources.DataSources` over the suite's gRPC channels."""

    def __init__(
        self,
        *,
        auth: aio.Channel,
        devices: aio.Channel,
        telemetry: aio.Channel,
        analytics: aio.Channel,
    ) -> None:
        self._profiles = profile_pb2_grpc.ProfileServiceStub(auth)
        self._status = system_pb2_grpc.SystemServiceStub(auth)
        self._devices = devices_pb2_grpc.DeviceServiceStub(devices)
        self._telemetry = telemetry_pb2_grpc.TelemetryServiceStub(telemetry)
        self._analytics = analytics_pb2_grpc.AnalyticsServiceStub(analytics)

    async def devices(self, token: str) -> list[DeviceInfo]:
        """Every device of the asker (pages of 100)."""
        found: list[DeviceInfo] = []
        page = 1
        while True:
            answer = await _call(
                self._devices.ListDevices(
                    devices_pb2.ListDevicesRequest(page=page, limit=100, sort="name"),
                    metadata=bearer_metadata(token),
                    timeout=DEADLINE,
                )
            )
            found += [
                DeviceInfo(
                    device_id=d.device_id,
                    name=d.name,
                    type=d.type,
                    status=d.status,
                    last_seen_at=datetime_field(d, "last_seen_at"),
                    readings_total=d.readings_total,
                )
                for d in answer.devices
            ]
            if page >= answer.pagination.total_pages:
                return found
            page += 1

    async def streams(self, token: str, device_id: str) -> list[StreamInfo]:
        """Every stream of one device (pages of 100)."""
        found: list[StreamInfo] = []
        page = 1
        while True:
            answer = await _call(
                self._telemetry.ListStreams(
                    telemetry_pb2.ListStreamsRequest(device_id=device_id, page=page, limit=100),
                    metadata=bearer_metadata(token),
                    timeout=DEADLINE,
                )
            )
            found += [
                StreamInfo(
                    stream_id=s.stream_id,
                    device_id=s.device_id,
                    metric_name=s.metric_name,
                    latest_value=s.latest_value if s.HasField("latest_value") else None,
                    last_seen_at=datetime_field(s, "last_seen_at"),
                )
                for s in answer.streams
            ]
            if page >= answer.pagination.total_pages:
                return found
            page += 1

    async def stats(self, token: str, stream_id: str, start: datetime, end: datetime) -> Stats:
        """Statistics of every reading of the range (the chart's points are not needed)."""
        answer = await _call(
            self._telemetry.GetStreamData(
                telemetry_pb2.GetStreamDataRequest(
                    stream_id=stream_id, start=timestamp(start), end=timestamp(end), max_points=2
                ),
                metadata=bearer_metadata(token),
                timeout=DEADLINE,
            )
        )
        s = answer.stats
        return Stats(count=s.count, min=s.min, max=s.max, mean=s.mean, stddev=s.stddev)

    async def anomalies(
        self,
        token: str,
        *,
        start: datetime,
        end: datetime,
        device_id: str | None = None,
        anomaly_type: str | None = None,
        review_status: str | None = None,
    ) -> list[AnomalyInfo]:
        """Up to 100 anomalies of the range, newest first."""
        answer = await _call(
            self._analytics.ListAnomalies(
                analytics_pb2.ListAnomaliesRequest(
                    page=1,
                    limit=100,
                    device_id=device_id or "",
                    anomaly_type=anomaly_type or "",
                    status=review_status or "",
                    start=timestamp(start),
                    end=timestamp(end),
                ),
                metadata=bearer_metadata(token),
                timeout=DEADLINE,
            )
        )
        return [
            AnomalyInfo(
                anomaly_id=a.anomaly_id,
                stream_id=a.stream_id,
                device_id=a.device_id,
                anomaly_type=a.anomaly_type,
                raw_value=a.raw_value,
                detected_at=a.detected_at.ToDatetime(tzinfo=UTC),
                status=a.status,
            )
            for a in answer.anomalies
        ]

    async def correlate(
        self, token: str, stream_a: str, stream_b: str, start: datetime, end: datetime
    ) -> CorrelationInfo:
        """A Pearson correlation of two streams over the window."""
        answer = await _call(
            self._analytics.CreateCorrelation(
                analytics_pb2.CreateCorrelationRequest(
                    stream_a=stream_a,
                    stream_b=stream_b,
                    window_start=timestamp(start),
                    window_end=timestamp(end),
                    algorithm="pearson",
                ),
                metadata=bearer_metadata(token),
                timeout=DEADLINE,
            )
        )
        return CorrelationInfo(
            coefficient=answer.coefficient,
            p_value=answer.p_value,
            sample_count=answer.sample_count,
            lag_seconds=answer.best_lag_seconds,
        )

    async def system_status(self) -> str:
        """The suite's overall status."""
        answer = await _call(
            self._status.GetSystemStatus(system_pb2.GetSystemStatusRequest(), timeout=DEADLINE)
        )
        return answer.status

    async def timezone(self, token: str) -> str:
        """The profile's ``timezone`` metadata, else UTC."""
        profile = await _call(
            self._profiles.GetProfile(
                profile_pb2.GetProfileRequest(), metadata=bearer_metadata(token), timeout=DEADLINE
            )
        )
        zone = profile.metadata.fields.get("timezone")
        return zone.string_value if zone is not None and zone.string_value else "UTC"

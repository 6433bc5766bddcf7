"""What the assistant reads from the other services, as domain values.

The assistant owns no readings: every figure it quotes comes from devices,
telemetry, analytics, auth or the system status, asked with the asker's own
token (``services/chat/clients.py`` makes the gRPC calls). A service that
cannot be reached raises :class:`SourceUnavailable`, which the assistant turns
into an honest answer rather than an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class SourceUnavailable(Exception):
    """A service the answer needs cannot be reached right now."""


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One of the asker's devices."""

    device_id: str
    name: str
    type: str
    status: str
    last_seen_at: datetime | None
    readings_total: int


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """One metric of a device."""

    stream_id: str
    device_id: str
    metric_name: str
    latest_value: float | None
    last_seen_at: datetime | None


@dataclass(frozen=True, slots=True)
class Stats:
    """Statistics of every reading of a stream in a range."""

    count: int
    min: float
    max: float
    mean: float
    stddev: float = 0.0
    """Population standard deviation, as telemetry's ``Stats`` gives it."""


@dataclass(frozen=True, slots=True)
class AnomalyInfo:
    """One anomaly found in the asker's readings."""

    anomaly_id: str
    stream_id: str
    device_id: str
    anomaly_type: str
    raw_value: float
    detected_at: datetime
    status: str


@dataclass(frozen=True, slots=True)
class CorrelationInfo:
    """How two streams move together in a window."""

    coefficient: float
    p_value: float
    sample_count: int
    lag_seconds: float


class DataSources(Protocol):
    """The other services, asked on the asker's behalf with their ``token``."""

    async def devices(self, token: str) -> list[DeviceInfo]:
        """Every device of the asker."""
        ...

    async def streams(self, token: str, device_id: str) -> list[StreamInfo]:
        """The streams of one of the asker's devices."""
        ...

    async def stats(self, token: str, stream_id: str, start: datetime, end: datetime) -> Stats:
        """Statistics of a stream's readings in ``[start, end)``."""
        ...

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
        """The asker's anomalies found in ``[start, end)``, newest first."""
        ...

    async def correlate(
        self, token: str, stream_a: str, stream_b: str, start: datetime, end: datetime
    ) -> CorrelationInfo:
        """Correlate two of the asker's streams over a window."""
        ...

    async def system_status(self) -> str:
        """The suite's overall status: healthy, degraded or down."""
        ...

    async def timezone(self, token: str) -> str:
        """The asker's time zone from their profile metadata ``timezone``, else "UTC"."""
        ...

"""Telemetry's domain values: what the store answers and the services take and return.

The store converts its rows to these (and these to rows), so nothing above
the store holds an ORM row: a value cannot lazy-load, expire or be written
back by accident, and the services read the same whichever database is used.
No gRPC and no SQL here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Stream:
    """A sensor stream: one metric of one device (seed 000 SensorStreamDTO)."""

    id: str
    device_id: str
    owner_id: str
    metric_name: str
    # The device's type when the stream was created: analytics takes physical bounds from it.
    device_type: str
    # Expected sampling, agreeing (see ``sampling``): whole Hz, and the interval in µs.
    sampling_rate: int
    sampling_period_us: int
    retention_days: int
    created_at: datetime
    # Time (µs) and value of the newest reading; None before the first one.
    last_ts: int | None = None
    last_value: float | None = None
    readings_count: int = 0

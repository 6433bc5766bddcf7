"""Analytics' domain values: what the store answers and the services take and return.

The store converts its rows to these (and these to rows), so nothing above
the store holds an ORM row: a value cannot lazy-load, expire or be written
back by accident, and the services read the same whichever database is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from iotkit.codec import Float64s, Int64s
from services.analytics.analytics.detectors import DetectorState


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A detected anomaly with its review (seed 000 AnomalyDetectionDTO)."""

    id: str
    stream_id: str
    device_id: str
    owner_id: str
    detected_us: int  # the reading it is about (a stuck run's or a gap's start)
    known_us: int  # the reading with which the detector could know it
    anomaly_type: str
    raw_value: float
    expected_value: float
    confidence: float
    status: str
    found_at: datetime
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_note: str


@dataclass(frozen=True, slots=True)
class Correlation:
    """A stored correlation result (seed 000 CorrelationResultDTO) and how far to trust it."""

    id: str
    owner_id: str
    stream_a: str
    stream_b: str
    coefficient: float
    window_start: datetime
    window_end: datetime
    algorithm: str
    sample_count: int
    best_lag_seconds: float
    grid_seconds: float
    created_at: datetime
    p_value: float
    ci_low: float
    ci_high: float
    effective_sample_count: float
    lags_tried: int


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A stream's detector as stored: whose stream, how far analysed, its state as JSON."""

    stream_id: str
    owner_id: str
    device_id: str
    position: int
    state: dict[str, Any]
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ScoreSeries:
    """The scores the detector gave the readings of one analysed chunk (aligned arrays)."""

    stream_id: str
    device_id: str
    timestamps: Int64s
    scores: Float64s  # 0 to 1 each


@dataclass(frozen=True, slots=True)
class Scores:
    """Scores of a stream over a range, oldest first, and where the rest starts, if any."""

    stream_id: str
    timestamps: Int64s
    scores: Float64s
    next_us: int | None


@dataclass(frozen=True, slots=True)
class Detector:
    """A stream's detector as shown: whose stream it is and what it has learnt.

    ``state`` is a copy: changing it changes nothing stored.
    """

    stream_id: str
    owner_id: str
    device_id: str
    state: DetectorState
